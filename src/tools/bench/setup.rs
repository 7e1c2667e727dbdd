//! The system under test: a temporary data directory, the in-process upstream, the front door(s),
//! and the credentials and pre-rendered requests of each scenario.
//!
//! The state is [`bench_fixture`] plus a `forward` collection whose one endpoint proxies to an
//! in-process hyper upstream answering `200 {"ok":true}`, and a token profile granted it. The
//! state is committed to the embedded store ([`SqliteStore`]) before [`start`], so the server loads it exactly as
//! it would load a user's store. `rs256-miss` runs against a second front door over a copy of the
//! same state with `cache_capacity: 0`: one repeated token, and every request checks the RSA
//! signature.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::load::get_request;
use super::{BenchError, Scenario};
use crate::app::{start, Running, ServeConfig};
use crate::core::catalog::ChangeSet;
use crate::core::keys::HmacKey;
use crate::core::model::{AuthConfig, Endpoint, Policy, Quota};
use crate::core::token;
use crate::door::layout::Layout;
use crate::server::tls::{client_config, TlsFiles};
use crate::server::{serve, ServerLimits};
use crate::store::{load_or_create_secrets_key, SqliteStore, Store};
use crate::tools::demo::{
    add_client, add_collection, add_profile, bench_fixture, BENCH_RSA_PRIVATE_PEM,
    BENCH_TLS_CA_PEM, BENCH_TLS_CERT_PEM, BENCH_TLS_KEY_PEM,
};
use crate::tools::jwt_sign::{client_claims, SigningKey};
use crate::tools::signing::RsaSigningKey;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;

/// Path of the fixed-response endpoint of the bench fixture.
const HELLO_PATH: &str = "/bench/hello";
/// Path of the proxied endpoint.
const FORWARD_PATH: &str = "/forward/hello";
/// What the upstream answers.
const UPSTREAM_BODY: &[u8] = br#"{"ok":true}"#;

/// A directory under the system temp dir, removed (with its contents) on drop.
pub struct TempDir {
    /// Its path.
    path: PathBuf,
}

impl TempDir {
    pub(super) fn new() -> Result<TempDir, BenchError> {
        let id = token::random_id()
            .map_err(|_| BenchError::new("the operating system's random source failed"))?;
        let path =
            std::env::temp_dir().join(format!("tokengate-bench-{}-{id}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| BenchError::new(format!("cannot create {}: {e}", path.display())))?;
        Ok(TempDir { path })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What a scenario sends and expects, and which server answers it.
pub struct Target<'a> {
    /// The server measured (its cache counters give the hit ratio).
    pub server: &'a Running,
    /// Requests sent in rotation.
    pub requests: Vec<Vec<u8>>,
    /// The status every response should carry.
    pub expected_status: u16,
    /// The client's TLS configuration, for the HTTPS front door.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// The running system under test.
pub struct Bench {
    /// The front door of every scenario but `rs256-miss`.
    main: Running,
    /// The front door without a token cache, for `rs256-miss`.
    uncached: Option<Running>,
    /// The HTTPS front door (the fixture certificate), for `tls` and `tls-handshake`, and a
    /// client configuration that trusts it.
    https: Option<(Running, Arc<rustls::ClientConfig>)>,
    /// Stops the upstream.
    upstream_shutdown: watch::Sender<bool>,
    /// The upstream's accept loop.
    upstream_task: JoinHandle<()>,
    /// The credentials of the scenarios.
    credentials: Credentials,
    /// The data directories; removed last, after the servers stopped.
    temp: TempDir,
}

/// Raw credentials of the scenarios.
struct Credentials {
    /// Auth token of the fixture's `token` profile.
    api_token: String,
    /// One HS256 JWT of the fixture's HS256 profile.
    hs256_jwt: String,
    /// One RS256 JWT of the fixture's RS256 profile.
    rs256_jwt: String,
    /// Auth token of the profile granted the `forward` collection.
    forward_token: String,
    /// Auth token of the profile with a quota.
    quota_token: String,
    /// Header lines that must all be refused with 401.
    unknown: Vec<String>,
}

impl Bench {
    /// Writes the state into a temporary store and starts the upstream and the front door(s).
    /// `uncached` starts the second front door (only `rs256-miss` needs it); `token_lifetime_s`
    /// must outlast the run; `access_log` turns the front doors' access log on (`-` or a path).
    pub async fn start(
        uncached: bool,
        tls: bool,
        token_lifetime_s: i64,
        data_layout: Layout,
        access_log: Option<String>,
    ) -> Result<Bench, BenchError> {
        let temp = TempDir::new()?;
        let (upstream_addr, upstream_shutdown, upstream_task) = start_upstream().await?;

        let fixture = bench_fixture().map_err(BenchError::from_display)?;
        let mut state = fixture.state;
        let forward_collection = add_collection(
            &mut state,
            "Forward",
            "forward",
            vec![Endpoint {
                id: token::random_id().map_err(|_| BenchError::new("random source failed"))?,
                name: "upstream hello".into(),
                method: "GET".into(),
                path: "/hello".into(),
                upstream: Some(format!("http://{upstream_addr}")),
                response: None,
                active: true,
            }],
        )
        .map_err(BenchError::from_display)?;
        let forward_client =
            add_client(&mut state, "Bench forward client").map_err(BenchError::from_display)?;
        let forward_token = add_profile(
            &mut state,
            &forward_client,
            "forward",
            vec![forward_collection],
            AuthConfig::Token,
        )
        .map_err(BenchError::from_display)?;

        // The quota scenario's profile: the api-token scenario's collection, a quota that never
        // runs out (2^40 − 1 a day), so the row shows what counting costs.
        let bench_collection = state
            .collections
            .iter()
            .find(|c| c.path == "bench")
            .map(|c| c.id.clone())
            .ok_or_else(|| BenchError::new("the bench fixture has no bench collection"))?;
        let quota_client =
            add_client(&mut state, "Bench quota client").map_err(BenchError::from_display)?;
        let quota_token = add_profile(
            &mut state,
            &quota_client,
            "quota",
            vec![bench_collection],
            AuthConfig::Token,
        )
        .map_err(BenchError::from_display)?;
        if let Some(profile) = state.profiles.last_mut() {
            profile.policy = Some(Policy {
                rate_limit: None,
                quota: Some(Quota {
                    requests: (1 << 40) - 1,
                    per_days: 1,
                }),
            });
        }

        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let hs256_key =
            HmacKey::from_secret(&fixture.hs256_secret, false).map_err(BenchError::from_display)?;
        let rs256_key =
            RsaSigningKey::parse(BENCH_RSA_PRIVATE_PEM).map_err(BenchError::from_display)?;
        let sign = |key: &SigningKey, sub: &str| {
            key.sign(&client_claims(
                sub,
                Some("Bench"),
                now_s,
                Some(token_lifetime_s),
            ))
            .map_err(BenchError::from_display)
        };
        let hs256_jwt = sign(&SigningKey::Hs256(hs256_key), &fixture.hs256_token)?;
        let rs256_jwt = sign(&SigningKey::Rs256(rs256_key), &fixture.rs256_token)?;

        // Unknown credentials: a well-formed auth token nobody holds, a JWT whose `sub` is such a
        // token (refused by the profile lookup, before any signature work), and garbage.
        let stranger = token::generate()
            .map_err(|_| BenchError::new("random source failed"))?
            .raw;
        let stranger_key =
            HmacKey::from_bytes(stranger.as_bytes()).map_err(BenchError::from_display)?;
        let stranger_jwt = sign(&SigningKey::Hs256(stranger_key), &stranger)?;
        let unknown = vec![
            format!("API-Token: {stranger}"),
            format!("Authorization: Bearer {stranger_jwt}"),
            "Authorization: Bearer not-a-jwt".to_string(),
        ];

        let main = start_door(
            temp.path().join("main"),
            &state,
            1_000_000,
            data_layout,
            access_log.clone(),
        )
        .await?;
        let uncached = if uncached {
            Some(
                start_door(
                    temp.path().join("uncached"),
                    &state,
                    0,
                    data_layout,
                    access_log.clone(),
                )
                .await?,
            )
        } else {
            None
        };
        let https = if tls {
            let dir = temp.path().join("https");
            std::fs::create_dir_all(&dir).map_err(BenchError::from_display)?;
            let files = TlsFiles {
                cert: dir.join("bench.crt"),
                key: dir.join("bench.key"),
            };
            std::fs::write(&files.cert, BENCH_TLS_CERT_PEM).map_err(BenchError::from_display)?;
            std::fs::write(&files.key, BENCH_TLS_KEY_PEM).map_err(BenchError::from_display)?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(BENCH_TLS_CA_PEM.as_bytes()) {
                roots
                    .add(cert.map_err(BenchError::from_display)?)
                    .map_err(BenchError::from_display)?;
            }
            let server = start_door_with(
                dir.join("data"),
                &state,
                1_000_000,
                data_layout,
                access_log,
                Some(files),
            )
            .await?;
            // Full handshakes only, as wrk does: `tls-handshake` measures the whole handshake.
            let mut config = (*client_config(roots)).clone();
            config.resumption = rustls::client::Resumption::disabled();
            Some((server, Arc::new(config)))
        } else {
            None
        };
        Ok(Bench {
            main,
            uncached,
            https,
            upstream_shutdown,
            upstream_task,
            credentials: Credentials {
                api_token: fixture.api_token,
                hs256_jwt,
                rs256_jwt,
                forward_token,
                quota_token,
                unknown,
            },
            temp,
        })
    }

    /// What `scenario` sends, to which server, expecting which status.
    pub fn target(&self, scenario: Scenario) -> Result<Target<'_>, BenchError> {
        let c = &self.credentials;
        let main = &self.main;
        let https = || {
            self.https.as_ref().ok_or_else(|| {
                BenchError::new("the TLS scenarios need the HTTPS server, which was not started")
            })
        };
        let one = |server: &Running, path: &str, header: String| {
            vec![get_request(server.data_addr, path, &[header])]
        };
        let target = match scenario {
            Scenario::ApiToken => Target {
                server: main,
                requests: one(main, HELLO_PATH, format!("API-Token: {}", c.api_token)),
                expected_status: 200,
                tls: None,
            },
            Scenario::Quota => Target {
                server: main,
                requests: one(main, HELLO_PATH, format!("API-Token: {}", c.quota_token)),
                expected_status: 200,
                tls: None,
            },
            Scenario::Verify => Target {
                server: main,
                requests: vec![get_request(
                    main.data_addr,
                    crate::door::verify::VERIFY,
                    &[
                        format!("API-Token: {}", c.api_token),
                        "X-Forwarded-Method: GET".to_owned(),
                        format!("X-Forwarded-Uri: {HELLO_PATH}"),
                    ],
                )],
                expected_status: 200,
                tls: None,
            },
            Scenario::Tls => {
                let (server, config) = https()?;
                Target {
                    server,
                    requests: one(server, HELLO_PATH, format!("API-Token: {}", c.api_token)),
                    expected_status: 200,
                    tls: Some(config.clone()),
                }
            }
            Scenario::TlsHandshake => {
                let (server, config) = https()?;
                Target {
                    server,
                    requests: vec![get_request(
                        server.data_addr,
                        HELLO_PATH,
                        &[
                            format!("API-Token: {}", c.api_token),
                            "Connection: close".to_owned(),
                        ],
                    )],
                    expected_status: 200,
                    tls: Some(config.clone()),
                }
            }
            Scenario::Hs256 => Target {
                server: main,
                requests: one(
                    main,
                    HELLO_PATH,
                    format!("Authorization: Bearer {}", c.hs256_jwt),
                ),
                expected_status: 200,
                tls: None,
            },
            Scenario::Rs256 => Target {
                server: main,
                requests: one(
                    main,
                    HELLO_PATH,
                    format!("Authorization: Bearer {}", c.rs256_jwt),
                ),
                expected_status: 200,
                tls: None,
            },
            Scenario::Rs256Miss => {
                let server = self.uncached.as_ref().ok_or_else(|| {
                    BenchError::new("rs256-miss needs the uncached server, which was not started")
                })?;
                Target {
                    server,
                    requests: one(
                        server,
                        HELLO_PATH,
                        format!("Authorization: Bearer {}", c.rs256_jwt),
                    ),
                    expected_status: 200,
                    tls: None,
                }
            }
            Scenario::Unknown => Target {
                server: main,
                requests: c
                    .unknown
                    .iter()
                    .map(|header| {
                        get_request(main.data_addr, HELLO_PATH, std::slice::from_ref(header))
                    })
                    .collect(),
                expected_status: 401,
                tls: None,
            },
            Scenario::Forward => Target {
                server: main,
                requests: one(
                    main,
                    FORWARD_PATH,
                    format!("API-Token: {}", c.forward_token),
                ),
                expected_status: 200,
                tls: None,
            },
        };
        Ok(target)
    }

    /// Stops the servers (bounded), then removes the data directories.
    pub async fn shutdown(self) {
        let Bench {
            main,
            uncached,
            https,
            upstream_shutdown,
            upstream_task,
            credentials: _,
            temp,
        } = self;
        let stop = async {
            main.shutdown().await;
            if let Some(uncached) = uncached {
                uncached.shutdown().await;
            }
            if let Some((https, _)) = https {
                https.shutdown().await;
            }
            let _ = upstream_shutdown.send(true);
            let _ = upstream_task.await;
        };
        if tokio::time::timeout(Duration::from_secs(5), stop)
            .await
            .is_err()
        {
            eprintln!("warning: the servers did not stop within 5 s; leaving them to the runtime");
        }
        drop(temp);
    }
}

/// Saves `state` into `dir` and starts a front door over it on free loopback ports.
async fn start_door(
    dir: PathBuf,
    state: &crate::core::model::State,
    cache_capacity: u64,
    layout: Layout,
    access_log: Option<String>,
) -> Result<Running, BenchError> {
    start_door_with(dir, state, cache_capacity, layout, access_log, None).await
}

/// [`start_door`], over HTTPS with `tls`.
async fn start_door_with(
    dir: PathBuf,
    state: &crate::core::model::State,
    cache_capacity: u64,
    layout: Layout,
    access_log: Option<String>,
    tls: Option<TlsFiles>,
) -> Result<Running, BenchError> {
    let (secrets, _) =
        load_or_create_secrets_key(&dir, None, true).map_err(BenchError::from_display)?;
    let (store, _) = SqliteStore::open(&dir, secrets).map_err(BenchError::from_display)?;
    store
        .commit(&ChangeSet::from_state(state))
        .map_err(BenchError::from_display)?;
    drop(store);
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    start(ServeConfig {
        listen: loopback,
        admin_listen: loopback,
        data_dir: dir,
        cache_capacity,
        layout,
        access_log,
        tls,
        ..ServeConfig::default()
    })
    .await
    .map_err(|e| BenchError::new(format!("cannot start the front door: {e}")))
}

/// Starts the upstream: HTTP/1.1 keep-alive, `200 {"ok":true}` to everything.
async fn start_upstream() -> Result<(SocketAddr, watch::Sender<bool>, JoinHandle<()>), BenchError> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| BenchError::new(format!("cannot listen for the upstream: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| BenchError::new(format!("cannot listen for the upstream: {e}")))?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(serve(
        listener,
        |_peer| service_fn(upstream_hello),
        ServerLimits::default(),
        shutdown_rx,
        None,
        None,
    ));
    Ok((addr, shutdown, task))
}

async fn upstream_hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(UPSTREAM_BODY)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}
