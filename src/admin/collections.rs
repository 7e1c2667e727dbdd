//! `/v1/collections`: list, read, create, replace and delete collections.

use serde_json::{json, Value};

use super::error::{created, no_content, ok, ApiError, Handled};
use super::{index_by_id, input, new_id, Admin};
use crate::core::model::{Collection, State};

impl Admin {
    pub(super) async fn list_collections(&self) -> Handled {
        let state = self.state.lock().await;
        ok(json!({ "collections": state.collections }))
    }

    pub(super) async fn get_collection(&self, id: &str) -> Handled {
        let state = self.state.lock().await;
        let collection = find_collection(&state, id)?;
        ok(json!(collection))
    }

    pub(super) async fn create_collection(&self, body: Value) -> Handled {
        let (_, parsed) = input::collection(&body, false)?;
        let collection = self
            .update(move |state| {
                ensure_path_free(state, &parsed.path, None)?;
                let endpoints = input::assign_endpoint_ids(parsed.endpoints, None, new_id)?;
                let collection = Collection {
                    id: new_id()?,
                    name: parsed.name,
                    path: parsed.path,
                    endpoints,
                };
                state.collections.push(collection.clone());
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
        let collection = self
            .update(move |state| {
                let index = collection_index(state, &id)?;
                ensure_path_free(state, &parsed.path, Some(&id))?;
                let endpoints = input::assign_endpoint_ids(
                    parsed.endpoints,
                    Some(&state.collections[index]),
                    new_id,
                )?;
                let collection = Collection {
                    id,
                    name: parsed.name,
                    path: parsed.path,
                    endpoints,
                };
                state.collections[index] = collection.clone();
                Ok(collection)
            })
            .await?;
        tracing::info!(collection_id = %collection.id, "collection replaced");
        ok(json!(collection))
    }

    pub(super) async fn delete_collection(&self, id: &str) -> Handled {
        let id = id.to_owned();
        self.update(move |state| {
            let index = collection_index(state, &id)?;
            state.collections.remove(index);
            for profile in &mut state.profiles {
                let before = profile.collections.len();
                profile.collections.retain(|c| *c != id);
                if profile.collections.len() != before {
                    profile.generation += 1;
                }
            }
            tracing::info!(collection_id = %id, "collection deleted");
            Ok(())
        })
        .await?;
        Ok(no_content())
    }
}

pub(super) fn collection_index(state: &State, id: &str) -> Result<usize, ApiError> {
    index_by_id(&state.collections, id, |c| &c.id, "collection")
}

pub(super) fn find_collection<'s>(state: &'s State, id: &str) -> Result<&'s Collection, ApiError> {
    collection_index(state, id).map(|i| &state.collections[i])
}

/// 409 if another collection (not `except`) already has `path`.
pub(super) fn ensure_path_free(
    state: &State,
    path: &str,
    except: Option<&str>,
) -> Result<(), ApiError> {
    match state
        .collections
        .iter()
        .find(|c| c.path == path && Some(c.id.as_str()) != except)
    {
        Some(other) => Err(ApiError::conflict(&format!(
            "path: {path:?} is already the path of collection {}",
            other.id
        ))),
        None => Ok(()),
    }
}
