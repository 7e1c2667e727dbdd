//! `/v1/collections`: list (paged), read, create, replace and delete collections.

use serde_json::{json, Value};

use super::error::{created, no_content_after, ok, with_propagation, ApiError, Handled};
use super::router::PageQuery;
use super::{input, new_id, Admin};
use crate::core::catalog::{Catalog, Kind, Row};
use crate::core::model::Collection;

impl Admin {
    pub(super) async fn list_collections(&self, query: PageQuery) -> Handled {
        let catalog = self.catalog.lock().await;
        let page = catalog.collections_page(query.after.as_deref(), query.limit);
        ok(json!({ "items": page.items, "next": page.next }))
    }

    pub(super) async fn get_collection(&self, id: &str) -> Handled {
        let catalog = self.catalog.lock().await;
        ok(json!(find_collection(&catalog, id)?))
    }

    pub(super) async fn create_collection(&self, body: Value) -> Handled {
        let (_, parsed) = input::collection(&body, false)?;
        let collection = self
            .update(move |catalog, rows| {
                ensure_path_free(catalog, &parsed.path, None)?;
                let endpoints = input::assign_endpoint_ids(parsed.endpoints, None, new_id)?;
                let collection = Collection {
                    id: new_id()?,
                    name: parsed.name,
                    path: parsed.path,
                    endpoints,
                };
                rows.put(Row::Collection(collection.clone()));
                Ok(collection)
            })
            .await?;
        tracing::info!(collection_id = %collection.id, path = %collection.path, "collection created");
        created(json!(collection))
    }

    pub(super) async fn replace_collection(&self, id: &str, body: Value) -> Handled {
        let (given_id, parsed) = input::collection(&body, true)?;
        if given_id.as_deref().is_some_and(|given| given != id) {
            return Err(ApiError::invalid(
                "id",
                "does not match the collection in the URL",
            ));
        }
        let id = id.to_owned();
        let (collection, propagation) = self
            .update_revoking(move |catalog, rows| {
                let current = find_collection(catalog, &id)?;
                ensure_path_free(catalog, &parsed.path, Some(&id))?;
                let endpoints =
                    input::assign_endpoint_ids(parsed.endpoints, Some(current), new_id)?;
                let collection = Collection {
                    id,
                    name: parsed.name,
                    path: parsed.path,
                    endpoints,
                };
                rows.put(Row::Collection(collection.clone()));
                Ok(collection)
            })
            .await?;
        tracing::info!(collection_id = %collection.id, "collection replaced");
        ok(with_propagation(json!(collection), propagation))
    }

    pub(super) async fn delete_collection(&self, id: &str) -> Handled {
        let id = id.to_owned();
        let ((), propagation) = self
            .update_revoking(move |catalog, rows| {
                find_collection(catalog, &id)?;
                rows.delete(Kind::Collection, &id);
                // Profiles that granted it lose the grant (a revoking change for them).
                for profile in catalog.profiles().filter(|p| p.collections.contains(&id)) {
                    let mut changed = profile.clone();
                    changed.collections.retain(|c| *c != id);
                    changed.generation += 1;
                    rows.put(Row::Profile(changed));
                }
                tracing::info!(collection_id = %id, "collection deleted");
                Ok(())
            })
            .await?;
        Ok(no_content_after(&propagation))
    }
}

pub(super) fn find_collection<'c>(
    catalog: &'c Catalog,
    id: &str,
) -> Result<&'c Collection, ApiError> {
    catalog
        .collection(id)
        .ok_or_else(|| ApiError::not_found("no such collection"))
}

/// 409 if another collection (not `except`) already has `path`.
pub(super) fn ensure_path_free(
    catalog: &Catalog,
    path: &str,
    except: Option<&str>,
) -> Result<(), ApiError> {
    match catalog.collection_by_path(path) {
        Some(other) if Some(other.id.as_str()) != except => Err(ApiError::conflict(&format!(
            "path: {path:?} is already the path of collection {}",
            other.id
        ))),
        _ => Ok(()),
    }
}
