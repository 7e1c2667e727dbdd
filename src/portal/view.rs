//! What a client's portal shows: the collections and endpoints its active profiles grant, read
//! from the live snapshot (never the store).

use std::collections::BTreeSet;

use crate::core::registry::{PortalClient, Snapshot};

/// One endpoint a client may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointView {
    /// The endpoint's name.
    pub name: String,
    /// The HTTP method (`GET`, `POST`, …).
    pub method: String,
    /// The full request path template, collection segment included (`/shop/orders/:id`).
    pub path: String,
    /// The `:param` names in the path, in order (`["id"]`).
    pub params: Vec<String>,
}

impl EndpointView {
    /// Whether a request with this method normally carries a body (POST, PUT, PATCH).
    pub fn takes_body(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH")
    }

    /// The path in OpenAPI form: `:id` segments become `{id}`.
    pub fn openapi_path(&self) -> String {
        self.path
            .split('/')
            .map(|segment| match segment.strip_prefix(':') {
                Some(name) => format!("{{{name}}}"),
                None => segment.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// One granted collection and its active endpoints, in definition order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionView {
    /// The collection's display name.
    pub name: String,
    /// Its URL segment.
    pub path: String,
    /// Its active endpoints.
    pub endpoints: Vec<EndpointView>,
}

/// Everything a portal page or its OpenAPI document shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientView {
    /// The client's name.
    pub name: String,
    /// Granted collections, ordered by URL segment.
    pub collections: Vec<CollectionView>,
}

impl ClientView {
    /// The view of `client` in `snapshot`: the union of the collections granted by its active
    /// profiles (a profile is active only while its client is), with their active endpoints.
    pub fn of(client: &PortalClient, snapshot: &Snapshot) -> ClientView {
        let granted: BTreeSet<u32> = client
            .profile_ids
            .iter()
            .filter_map(|id| snapshot.profile(id))
            .filter(|profile| profile.active)
            .flat_map(|profile| profile.collections.iter().copied())
            .collect();
        let mut collections: Vec<CollectionView> = snapshot
            .collections()
            .filter(|c| granted.contains(&c.index))
            .map(|c| CollectionView {
                name: c.name.to_string(),
                path: c.path.to_string(),
                endpoints: c
                    .endpoints
                    .iter()
                    .filter(|e| e.active)
                    .map(|e| EndpointView {
                        name: e.name.to_string(),
                        method: e.method.as_str().to_owned(),
                        path: full_path(&c.path, &e.path),
                        params: e
                            .path
                            .split('/')
                            .filter_map(|s| s.strip_prefix(':'))
                            .map(str::to_owned)
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        collections.sort_by(|a, b| a.path.cmp(&b.path));
        ClientView {
            name: client.name.to_string(),
            collections,
        }
    }

    /// Every endpoint, collection by collection, with its collection.
    pub fn endpoints(&self) -> impl Iterator<Item = (&CollectionView, &EndpointView)> {
        self.collections
            .iter()
            .flat_map(|c| c.endpoints.iter().map(move |e| (c, e)))
    }
}

/// `/<collection><endpoint path>`, without a trailing `/` for the endpoint path `/`.
fn full_path(collection: &str, endpoint: &str) -> String {
    if endpoint == "/" {
        format!("/{collection}")
    } else {
        format!("/{collection}{endpoint}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_path_braces_params() {
        let e = EndpointView {
            name: "n".into(),
            method: "GET".into(),
            path: "/shop/orders/:id/items/:item".into(),
            params: vec!["id".into(), "item".into()],
        };
        assert_eq!(e.openapi_path(), "/shop/orders/{id}/items/{item}");
        assert!(!e.takes_body());
        assert_eq!(full_path("shop", "/"), "/shop");
        assert_eq!(full_path("shop", "/a"), "/shop/a");
    }
}
