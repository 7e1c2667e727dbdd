//! The whole server in-process (`app::start` on loopback ports over a temporary data dir) and a
//! client of its admin API, used the way an operator would (SPEC §4).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};
use tokengate::app::{self, Running, ServeConfig};

use super::{send, try_send, BoxError, Reply, TempDir, ADMIN_KEY};

/// A client of the admin API at `addr`, authenticated with [`ADMIN_KEY`].
#[derive(Debug, Clone, Copy)]
pub struct AdminClient {
    /// The admin API's address.
    pub addr: SocketAddr,
}

/// A client with one access profile, as created through the admin API.
#[derive(Debug, Clone)]
pub struct Access {
    /// The client's id.
    pub client_id: String,
    /// The profile's id.
    pub profile_id: String,
    /// The profile's auth token, as shown once at creation.
    pub token: String,
}

impl AdminClient {
    /// Calls the admin API; `body` is JSON. Errors only when the connection fails.
    pub async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), BoxError> {
        let auth = format!("Bearer {ADMIN_KEY}");
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let reply = try_send(
            self.addr,
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await?;
        let value = if reply.body.is_empty() {
            Value::Null
        } else {
            reply.json()
        };
        Ok((reply.status, value))
    }

    /// Calls the admin API and asserts the answer's status; returns the answer's JSON.
    pub async fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (got, value) = self
            .try_call(method, path, body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("admin {method} {path}: {e}"));
        assert_eq!(got.as_u16(), status, "admin {method} {path}: {value}");
        value
    }

    /// Creates a collection at `/<path>` with `endpoints`; returns its id.
    pub async fn collection(&self, path: &str, endpoints: Value) -> String {
        let body = json!({"name": path, "path": path, "endpoints": endpoints});
        let created = self
            .expect(201, "POST", "/v1/collections", Some(body))
            .await;
        created["id"].as_str().unwrap().to_owned()
    }

    /// Creates a client; returns its id.
    pub async fn client(&self, name: &str) -> String {
        let created = self
            .expect(201, "POST", "/v1/clients", Some(json!({"name": name})))
            .await;
        created["id"].as_str().unwrap().to_owned()
    }

    /// Creates a profile of `client_id` from `profile` (its `name` defaults to `"main"`).
    pub async fn profile(&self, client_id: &str, mut profile: Value) -> Access {
        if profile.get("name").is_none() {
            profile["name"] = json!("main");
        }
        let path = format!("/v1/clients/{client_id}/profiles");
        let created = self.expect(201, "POST", &path, Some(profile)).await;
        Access {
            client_id: client_id.to_owned(),
            profile_id: created["id"].as_str().unwrap().to_owned(),
            token: created["auth_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates a client named `name` with one profile (see [`AdminClient::profile`]).
    pub async fn access(&self, name: &str, profile: Value) -> Access {
        let client_id = self.client(name).await;
        self.profile(&client_id, profile).await
    }

    /// Refreshes a profile's auth token; returns the new token.
    pub async fn refresh(&self, profile_id: &str, body: Option<Value>) -> String {
        let path = format!("/v1/profiles/{profile_id}/refresh");
        let refreshed = self.expect(200, "POST", &path, body).await;
        refreshed["auth_token"].as_str().unwrap().to_owned()
    }

    /// `PATCH /v1/profiles/{id}`.
    pub async fn patch_profile(&self, profile_id: &str, patch: Value) {
        let path = format!("/v1/profiles/{profile_id}");
        self.expect(200, "PATCH", &path, Some(patch)).await;
    }

    /// `PATCH /v1/clients/{id}`.
    pub async fn patch_client(&self, client_id: &str, patch: Value) {
        let path = format!("/v1/clients/{client_id}");
        self.expect(200, "PATCH", &path, Some(patch)).await;
    }

    /// The value of an unlabelled counter or gauge from `GET /metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let auth = format!("Bearer {ADMIN_KEY}");
        let reply = send(
            self.addr,
            "GET",
            "/metrics",
            &[("authorization", &auth)],
            "",
        )
        .await;
        reply.assert_status(200);
        let text = reply.text();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
            .parse()
            .unwrap()
    }
}

/// A fixed-response endpoint `GET <path>` answering 200 `{"pong":true}`.
pub fn ping(path: &str) -> Value {
    json!({"name": "ping", "method": "GET", "path": path,
           "response": {"status": 200, "body": {"pong": true}}})
}

/// An endpoint `<method> <path>` forwarding to `upstream`.
pub fn forward(method: &str, path: &str, upstream: &str) -> Value {
    json!({"name": "forward", "method": method, "path": path, "upstream": upstream})
}

/// The `Authorization: Bearer` header pair for `jwt`.
pub fn bearer(jwt: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {jwt}"))
}

/// The whole server, in-process, on free loopback ports over a temporary data directory.
pub struct Gateway {
    /// The data plane's address.
    pub data: SocketAddr,
    /// The admin API.
    pub admin: AdminClient,
    /// The data directory.
    pub dir: Arc<TempDir>,
    /// The running server.
    running: Running,
}

impl Gateway {
    /// Starts with default settings.
    pub async fn start() -> Gateway {
        Self::start_with(|_| {}).await
    }

    /// Starts with settings changed by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut ServeConfig)) -> Gateway {
        Self::start_in(Arc::new(TempDir::new()), configure).await
    }

    /// Starts over `dir` (a restart when it holds a previous run's state).
    pub async fn start_in(dir: Arc<TempDir>, configure: impl FnOnce(&mut ServeConfig)) -> Gateway {
        let mut config = ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().to_owned(),
            admin_key: Some(ADMIN_KEY.to_owned()),
            ..ServeConfig::default()
        };
        configure(&mut config);
        let running = app::start(config).await.expect("the server starts");
        Gateway {
            data: running.data_addr,
            admin: AdminClient {
                addr: running.admin_addr,
            },
            dir,
            running,
        }
    }

    /// The data plane's shared state (registry, gate).
    pub fn door(&self) -> &tokengate::door::FrontDoor {
        &self.running.door
    }

    /// Shuts down (draining) and hands back the data directory.
    pub async fn stop(self) -> Arc<TempDir> {
        self.running.shutdown().await;
        self.dir
    }

    /// Sends a request without a body to the data plane.
    pub async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        send(self.data, method, path, headers, "").await
    }

    /// `GET path` with `API-Token: token`.
    pub async fn get_with_token(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, &[("api-token", token)]).await
    }

    /// `GET path` with `Authorization: Bearer jwt`.
    pub async fn get_with_jwt(&self, path: &str, jwt: &str) -> Reply {
        let (name, value) = bearer(jwt);
        self.call("GET", path, &[(name, &value)]).await
    }
}
