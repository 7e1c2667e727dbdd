//! `/v1/clients`: list (paged), read, create, change (enable, disable, rename), rotate the
//! portal key of, and delete clients.

use serde_json::{json, Value};

use super::error::{created, no_content_after, ok, with_propagation, ApiError, Handled};
use super::router::PageQuery;
use super::{input, new_id, Admin};
use crate::core::catalog::{Catalog, Kind, Row};
use crate::core::model::Client;
use crate::core::token;

impl Admin {
    pub(super) fn client_view(&self, client: &Client) -> Value {
        json!({
            "id": client.id,
            "name": client.name,
            "portal_key": client.portal_key,
            "portal_url": format!("{}/_tokengate/portal/{}", self.portal_base_url, client.portal_key),
            "active": client.active,
        })
    }

    pub(super) async fn list_clients(&self, query: PageQuery) -> Handled {
        let catalog = self.catalog.lock().await;
        let page = catalog.clients_page(query.after.as_deref(), query.limit);
        let items: Vec<Value> = page.items.iter().map(|c| self.client_view(c)).collect();
        ok(json!({ "items": items, "next": page.next }))
    }

    pub(super) async fn get_client(&self, id: &str) -> Handled {
        let catalog = self.catalog.lock().await;
        ok(self.client_view(find_client(&catalog, id)?))
    }

    pub(super) async fn create_client(&self, body: Value) -> Handled {
        let obj = input::Obj::new(&body, "", &["name", "active"])?;
        let name = input::name("name", obj.req_str("name")?)?;
        let active = obj.opt_bool("active")?.unwrap_or(true);
        let client = self
            .update(move |_, rows| {
                let portal_key = new_portal_key()?;
                let client = Client {
                    id: new_id()?,
                    name,
                    portal_key,
                    active,
                };
                rows.put(Row::Client(client.clone()));
                Ok(client)
            })
            .await?;
        tracing::info!(client_id = %client.id, "client created");
        created(self.client_view(&client))
    }

    pub(super) async fn patch_client(&self, id: &str, body: Value) -> Handled {
        let obj = input::Obj::new(&body, "", &["name", "active"])?;
        let name = match obj.opt_str("name")? {
            Some(text) => Some(input::name("name", text)?),
            None => None,
        };
        let active = obj.opt_bool("active")?;
        let id = id.to_owned();
        let (client, propagation) = self
            .update_revoking(move |catalog, rows| {
                let mut client = find_client(catalog, &id)?.clone();
                if let Some(name) = name {
                    client.name = name;
                }
                if let Some(active) = active {
                    client.active = active;
                }
                rows.put(Row::Client(client.clone()));
                // The client's name and activity are part of every one of its profiles'
                // verdicts: void their cached verifications.
                for profile in catalog.profiles_of_client(&id) {
                    let mut changed = profile.clone();
                    changed.generation += 1;
                    rows.put(Row::Profile(changed));
                }
                Ok(client)
            })
            .await?;
        tracing::info!(client_id = %client.id, active = client.active, "client changed");
        ok(with_propagation(self.client_view(&client), propagation))
    }

    /// `POST /v1/clients/{id}/portal-key`: a new portal key; the old portal URL stops working
    /// on every node the answer's `propagation.applied` counts.
    pub(super) async fn rotate_portal_key(&self, id: &str) -> Handled {
        let id = id.to_owned();
        let (client, propagation) = self
            .update_revoking(move |catalog, rows| {
                let mut client = find_client(catalog, &id)?.clone();
                client.portal_key = new_portal_key()?;
                rows.put(Row::Client(client.clone()));
                Ok(client)
            })
            .await?;
        tracing::info!(client_id = %client.id, "portal key rotated");
        ok(with_propagation(self.client_view(&client), propagation))
    }

    pub(super) async fn delete_client(&self, id: &str) -> Handled {
        let id = id.to_owned();
        let ((), propagation) = self
            .update_revoking(move |catalog, rows| {
                find_client(catalog, &id)?;
                for profile in catalog.profiles_of_client(&id) {
                    rows.delete(Kind::Profile, &profile.id);
                }
                rows.delete(Kind::Client, &id);
                tracing::info!(client_id = %id, "client and its profiles deleted");
                Ok(())
            })
            .await?;
        Ok(no_content_after(&propagation))
    }
}

/// A portal key: 256 bits from the operating system's CSPRNG, as 64 hex characters.
fn new_portal_key() -> Result<String, ApiError> {
    token::generate()
        .map(|t| t.raw)
        .map_err(|_| ApiError::internal("the operating system's random generator failed"))
}

pub(super) fn find_client<'c>(catalog: &'c Catalog, id: &str) -> Result<&'c Client, ApiError> {
    catalog
        .client(id)
        .ok_or_else(|| ApiError::not_found("no such client"))
}
