//! `tokengate bench --store postgres://…`: three nodes on one PostgreSQL, in-process, and how
//! long a change takes from its commit to being applied on the other two.
//!
//! A new database is made on the server the URL names (and dropped after). Each change creates
//! a profile through node A's admin API over loopback; the clock starts when A's answer arrives
//! (the change is committed then) and stops when both B's and C's live snapshots hold the new
//! token, polled every 100 µs. Changes are made one after another.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Method;
use serde_json::json;
use tokio_postgres::NoTls;

use super::setup::TempDir;
use super::store_scale::BENCH_ADMIN_KEY;
use super::BenchError;
use crate::app::{start, Running, ServeConfig};
use crate::cli::admin_client::{AdminClient, BaseUrl, KeyOrigin};
use crate::core::token::token_digest;
use crate::store::{NodeInfo, PgStore, SecretsKey};

/// The secrets key of benchmark nodes (never a real one).
pub(super) const BENCH_SECRETS_KEY: &str = "q1XbgTQqV3GS6OnRzbrUvH2e9LxEHg6G5iRH1YdKW8I=";

/// Makes a new database on the server `url` names; returns its URL.
pub(super) async fn fresh_database(url: &str) -> Result<String, BenchError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(BenchError::from_display)?;
    tokio::spawn(connection);
    let id = crate::core::token::random_id().map_err(|_| BenchError::new("no randomness"))?;
    let name = format!("tg_bench_{id}");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(BenchError::from_display)?;
    let (prefix, _) = url
        .rsplit_once('/')
        .ok_or_else(|| BenchError::new("the store URL must end with /<database>"))?;
    Ok(format!("{prefix}/{name}"))
}

/// Drops a database made by [`fresh_database`] (best effort).
pub(super) async fn drop_database(url: &str, database_url: &str) {
    let Some((_, name)) = database_url.rsplit_once('/') else {
        return;
    };
    if let Ok((client, connection)) = tokio_postgres::connect(url, NoTls).await {
        tokio::spawn(connection);
        let _ = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

/// A store connection for seeding, as a node would open it.
pub(super) async fn pg_store(url: &str) -> Result<PgStore, BenchError> {
    let secrets = SecretsKey::from_base64(BENCH_SECRETS_KEY).map_err(BenchError::new)?;
    let node = NodeInfo {
        id: "bench-seeder".to_owned(),
        listen: "-".to_owned(),
    };
    PgStore::connect(url, secrets, node)
        .await
        .map_err(BenchError::from_display)
}

async fn node(database: &str, dir: &TempDir) -> Result<Running, BenchError> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    start(ServeConfig {
        listen: loopback,
        admin_listen: loopback,
        data_dir: dir.path().to_owned(),
        admin_key: Some(BENCH_ADMIN_KEY.to_owned()),
        secrets_key: Some(BENCH_SECRETS_KEY.to_owned()),
        store: Some(database.to_owned()),
        ..ServeConfig::default()
    })
    .await
    .map_err(BenchError::from_display)
}

/// Runs the propagation benchmark with `changes` changes and prints p50/p99/max.
pub fn run(url: &str, changes: usize) -> Result<(), BenchError> {
    let runtime = super::runtime("propagation", 2)?;
    let database = runtime.block_on(fresh_database(url))?;
    let dirs = [TempDir::new()?, TempDir::new()?, TempDir::new()?];
    let result = (|| {
        let a = runtime.block_on(node(&database, &dirs[0]))?;
        let b = runtime.block_on(node(&database, &dirs[1]))?;
        let c = runtime.block_on(node(&database, &dirs[2]))?;
        let base = BaseUrl::parse(&format!("http://{}", a.admin_addr)).map_err(BenchError::new)?;
        let admin = AdminClient::new(base, BENCH_ADMIN_KEY.to_owned(), KeyOrigin::Environment)
            .map_err(BenchError::new)?;
        let id_of = |answer: &crate::cli::admin_client::Answer, field: &str| {
            serde_json::from_slice::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|v| v[field].as_str().map(str::to_owned))
                .ok_or_else(|| BenchError::new(format!("the answer has no {field}")))
        };
        let mut times = Vec::with_capacity(changes);
        let mut client = String::new();
        for n in 0..changes {
            if n % 20 == 0 {
                let answer = admin
                    .call(
                        Method::POST,
                        "/v1/clients",
                        Some(&json!({"name": format!("c{n}")})),
                    )
                    .map_err(BenchError::from_display)?;
                client = id_of(&answer, "id")?;
            }
            let answer = admin
                .call(
                    Method::POST,
                    &format!("/v1/clients/{client}/profiles"),
                    Some(&json!({"name": format!("p{n}"), "auth": {"type": "token"}})),
                )
                .map_err(BenchError::from_display)?;
            let committed = Instant::now();
            let digest = token_digest(id_of(&answer, "auth_token")?.as_bytes());
            loop {
                let on = |r: &Running| {
                    r.admin
                        .registry()
                        .snapshot()
                        .profile_by_token(&digest)
                        .is_some()
                };
                if on(&b) && on(&c) {
                    break;
                }
                if committed.elapsed() > Duration::from_secs(10) {
                    return Err(BenchError::new("a change did not arrive within 10 s"));
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            times.push(committed.elapsed());
        }
        for running in [a, b, c] {
            runtime.block_on(running.shutdown());
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "propagation over {} changes, 3 nodes: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            times.len(),
            at(0.5).as_secs_f64() * 1000.0,
            at(0.99).as_secs_f64() * 1000.0,
            at(1.0).as_secs_f64() * 1000.0
        );
        Ok(())
    })();
    runtime.block_on(drop_database(url, &database));
    result
}
