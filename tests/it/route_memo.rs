//! A connection's memo of its last route (`core::route_memo`): it answers exactly as the
//! snapshot routes, repeated or not, and an admin change (a collection deleted, which moves
//! another one's position; an endpoint changed) routes the very next request afresh.

use http::Method;
use tokengate::core::catalog::{Catalog, ChangeSet, Kind, RowOp};
use tokengate::core::model::{Collection, Endpoint, FixedResponse, State};
use tokengate::core::registry::Snapshot;
use tokengate::core::route_memo::{RouteMemo, MAX_PATH_LEN};

fn endpoint(id: &str, method: &str, path: &str) -> Endpoint {
    Endpoint {
        id: id.into(),
        name: id.into(),
        method: method.into(),
        path: path.into(),
        upstream: None,
        response: Some(FixedResponse {
            status: 200,
            headers: Default::default(),
            body: serde_json::json!({ "endpoint": id }),
        }),
        active: true,
    }
}

fn collection(id: &str, path: &str, endpoints: Vec<Endpoint>) -> Collection {
    Collection {
        id: id.into(),
        name: id.into(),
        path: path.into(),
        endpoints,
    }
}

/// Three collections; `orders` has exact, parameter and method-distinguished endpoints.
fn three_collections() -> State {
    State {
        collections: vec![
            collection(
                "c-orders",
                "orders",
                vec![
                    endpoint("list", "GET", "/"),
                    endpoint("create", "POST", "/"),
                    endpoint("one", "GET", "/:id"),
                    endpoint("lines", "GET", "/:id/lines"),
                    endpoint("stats", "GET", "/stats"),
                ],
            ),
            collection("c-users", "users", vec![endpoint("me", "GET", "/me")]),
            collection("c-ping", "ping", vec![endpoint("ping", "GET", "/")]),
        ],
        ..State::default()
    }
}

/// A route as ids: (collection id, endpoint id, rest of the path).
type Seen = Option<(String, Option<String>, String)>;

fn by_snapshot(snapshot: &Snapshot, method: &Method, path: &str) -> Seen {
    snapshot.route(method, path).map(|(c, e, rest)| {
        (
            c.id.to_string(),
            e.map(|e| e.id.to_string()),
            rest.to_owned(),
        )
    })
}

fn by_memo(memo: &mut RouteMemo, snapshot: &Snapshot, method: &Method, path: &str) -> Seen {
    memo.route(snapshot, method, path).map(|(c, e, rest)| {
        (
            c.id.to_string(),
            e.map(|e| e.id.to_string()),
            rest.to_owned(),
        )
    })
}

fn delete_collection(state: &mut State, id: &str, previous: &Snapshot) -> Snapshot {
    let mut catalog = Catalog::from_state(state);
    let applied = catalog.apply(ChangeSet {
        ops: vec![RowOp::Delete(Kind::Collection, id.into())],
    });
    state.collections.retain(|c| c.id != id);
    previous.apply(&applied, &catalog).unwrap()
}

#[test]
fn the_memo_routes_every_request_as_the_snapshot_does() {
    let snapshot = Snapshot::build(&three_collections()).unwrap();
    let requests = [
        (Method::GET, "/orders/42"),
        (Method::GET, "/orders/42"),
        (Method::POST, "/orders/42"),
        (Method::POST, "/orders"),
        (Method::POST, "/orders"),
        (Method::GET, "/orders"),
        (Method::GET, "/orders/stats"),
        (Method::GET, "/orders/42/lines"),
        (Method::GET, "/orders/43/lines"),
        (Method::GET, "/users/me"),
        (Method::DELETE, "/users/me"),
        (Method::GET, "/users/me"),
        (Method::GET, "/nowhere/me"),
        (Method::GET, "/users/me"),
        (Method::GET, "/ping"),
        (Method::GET, "/"),
        (Method::GET, "/ping"),
    ];
    let mut memo = RouteMemo::default();
    for (method, path) in &requests {
        let want = by_snapshot(&snapshot, method, path);
        assert_eq!(
            by_memo(&mut memo, &snapshot, method, path),
            want,
            "{method} {path}"
        );
    }
    // Spot checks that the comparison above compares something.
    assert_eq!(
        by_memo(&mut memo, &snapshot, &Method::GET, "/orders/42/lines"),
        Some(("c-orders".into(), Some("lines".into()), "/42/lines".into()))
    );
    assert_eq!(
        by_memo(&mut memo, &snapshot, &Method::PUT, "/orders/42/lines"),
        Some(("c-orders".into(), None, "/42/lines".into()))
    );
    assert_eq!(
        by_memo(&mut memo, &snapshot, &Method::GET, "/nowhere"),
        None
    );
    // A path too long to remember is still routed.
    let long = format!("/orders/{}", "9".repeat(MAX_PATH_LEN));
    for _ in 0..2 {
        assert_eq!(
            by_memo(&mut memo, &snapshot, &Method::GET, &long),
            Some((
                "c-orders".into(),
                Some("one".into()),
                long["/orders".len()..].into()
            ))
        );
    }
}

#[test]
fn an_admin_change_routes_the_next_request_afresh() {
    let mut state = three_collections();
    let before = Snapshot::build(&state).unwrap();
    let mut memo = RouteMemo::default();
    let ping = Some(("c-ping".into(), Some("ping".into()), "/".into()));
    assert_eq!(by_memo(&mut memo, &before, &Method::GET, "/ping"), ping);

    // Deleting the first collection moves the last one into its position.
    let after = delete_collection(&mut state, "c-orders", &before);
    assert_ne!(after.epoch(), before.epoch());
    assert_eq!(by_memo(&mut memo, &after, &Method::GET, "/ping"), ping);
    assert_eq!(by_memo(&mut memo, &after, &Method::GET, "/orders/42"), None);
    assert_eq!(
        by_memo(&mut memo, &after, &Method::GET, "/users/me"),
        Some(("c-users".into(), Some("me".into()), "/me".into()))
    );
    assert_eq!(
        by_memo(&mut memo, &after, &Method::GET, "/users/me"),
        by_snapshot(&after, &Method::GET, "/users/me")
    );
    // The previous snapshot, still held by a request in flight, still routes as it did.
    assert_eq!(
        by_memo(&mut memo, &before, &Method::GET, "/orders/42"),
        Some(("c-orders".into(), Some("one".into()), "/42".into()))
    );

    // An endpoint's path changes: the remembered endpoint index is not trusted.
    assert_eq!(
        by_memo(&mut memo, &after, &Method::GET, "/users/me"),
        by_snapshot(&after, &Method::GET, "/users/me")
    );
    state.collections[0].endpoints = vec![
        endpoint("you", "GET", "/you"),
        endpoint("me2", "GET", "/me"),
    ];
    let changed = crate::decision::rebuild(&state, &after).unwrap();
    assert_eq!(
        by_memo(&mut memo, &changed, &Method::GET, "/users/me"),
        Some(("c-users".into(), Some("me2".into()), "/me".into()))
    );
    assert_eq!(by_memo(&mut memo, &changed, &Method::GET, "/ping"), ping);
}
