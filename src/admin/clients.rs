//! `/v1/clients`: list, read, create, change (enable, disable, rename) and delete clients.

use serde_json::{json, Value};

use super::error::{created, no_content, ok, ApiError, Handled};
use super::{index_by_id, input, new_id, Admin};
use crate::core::model::{Client, State};
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

    pub(super) async fn list_clients(&self) -> Handled {
        let state = self.state.lock().await;
        let clients: Vec<Value> = state.clients.iter().map(|c| self.client_view(c)).collect();
        ok(json!({ "clients": clients }))
    }

    pub(super) async fn get_client(&self, id: &str) -> Handled {
        let state = self.state.lock().await;
        let client = find_client(&state, id)?;
        ok(self.client_view(client))
    }

    pub(super) async fn create_client(&self, body: Value) -> Handled {
        let obj = input::Obj::new(&body, "", &["name", "active"])?;
        let name = input::name("name", obj.req_str("name")?)?;
        let active = obj.opt_bool("active")?.unwrap_or(true);
        let client = self
            .update(move |state| {
                let portal_key = token::generate()
                    .map_err(|_| {
                        ApiError::internal("the operating system's random generator failed")
                    })?
                    .raw;
                let client = Client {
                    id: new_id()?,
                    name,
                    portal_key,
                    active,
                };
                state.clients.push(client.clone());
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
        let client = self
            .update(move |state| {
                let index = client_index(state, &id)?;
                let client = &mut state.clients[index];
                if let Some(name) = name {
                    client.name = name;
                }
                if let Some(active) = active {
                    client.active = active;
                }
                let client = client.clone();
                // The client's name and activity are part of every one of its profiles'
                // verdicts: void their cached verifications.
                for profile in state.profiles.iter_mut().filter(|p| p.client_id == id) {
                    profile.generation += 1;
                }
                Ok(client)
            })
            .await?;
        tracing::info!(client_id = %client.id, active = client.active, "client changed");
        ok(self.client_view(&client))
    }

    pub(super) async fn delete_client(&self, id: &str) -> Handled {
        let id = id.to_owned();
        self.update(move |state| {
            let index = client_index(state, &id)?;
            state.clients.remove(index);
            state.profiles.retain(|p| p.client_id != id);
            tracing::info!(client_id = %id, "client and its profiles deleted");
            Ok(())
        })
        .await?;
        Ok(no_content())
    }
}

pub(super) fn client_index(state: &State, id: &str) -> Result<usize, ApiError> {
    index_by_id(&state.clients, id, |c| &c.id, "client")
}

pub(super) fn find_client<'s>(state: &'s State, id: &str) -> Result<&'s Client, ApiError> {
    client_index(state, id).map(|i| &state.clients[i])
}
