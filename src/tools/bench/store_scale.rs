//! `tokengate bench --store-scale 1000,10000,100000`: what the embedded store costs as it grows.
//!
//! For each size N: a temporary store is seeded with N profiles in one transaction (a client per
//! 20 profiles, every 4th profile RS256 with [`BENCH_RSA_PUBLIC_PEM`], the rest auth tokens);
//! the real server is started over it (the start time: open the database, load every row,
//! compile every profile, parse every RSA key); then admin writes go through the real admin API
//! over loopback, one at a time, in a fixed rotation — rename a profile, refresh a token, create
//! a client, disable and enable a profile — and their latencies give p50 and p99.
//! With `--store postgres://…` the same runs on PostgreSQL, each size in a database of its own.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Method;
use serde_json::json;

use super::setup::TempDir;
use super::BenchError;
use crate::app::{start, ServeConfig};
use crate::cli::admin_client::{AdminClient, BaseUrl, KeyOrigin};
use crate::core::catalog::ChangeSet;
use crate::core::model::{AuthConfig, JwtAlg, State};
use crate::store::{load_or_create_secrets_key, SqliteStore, Store};
use crate::tools::demo::{
    add_client, add_collection, add_profile, hello_endpoint, jwt_auth, BENCH_RSA_PUBLIC_PEM,
};

/// Admin writes timed per size.
const WRITES: usize = 400;
/// The admin key of the benchmark server (never a real one).
pub(super) const BENCH_ADMIN_KEY: &str = "bench-admin-key-0123456789abcdef0123456789";

/// One size's numbers.
#[derive(Debug, Clone)]
pub struct ScaleResult {
    /// Profiles stored.
    pub profiles: usize,
    /// Of them RS256.
    pub rs256: usize,
    /// Seconds to seed them (one transaction).
    pub seed_s: f64,
    /// Seconds from `start` to a server answering (load + compile).
    pub start_s: f64,
    /// Median admin write, milliseconds.
    pub write_p50_ms: f64,
    /// 99th percentile admin write, milliseconds.
    pub write_p99_ms: f64,
    /// Writes measured.
    pub writes: usize,
}

/// Runs every size in `sizes` and prints a table (or JSON lines with `json`). With `store` (a
/// PostgreSQL URL) each size runs in a new database made on that server (and dropped after).
pub fn run(
    sizes: &[usize],
    store: Option<&str>,
    json_out: bool,
) -> Result<Vec<ScaleResult>, BenchError> {
    if !json_out {
        println!(
            "{:>9} {:>7} {:>8} {:>8} {:>10} {:>10} {:>7}",
            "profiles", "rs256", "seed_s", "start_s", "write_p50", "write_p99", "writes"
        );
    }
    let mut results = Vec::new();
    for &size in sizes {
        let r = one_size(size, store)?;
        if json_out {
            println!(
                "{}",
                json!({"profiles": r.profiles, "rs256": r.rs256, "seed_s": r.seed_s,
                       "start_s": r.start_s, "write_p50_ms": r.write_p50_ms,
                       "write_p99_ms": r.write_p99_ms, "writes": r.writes})
            );
        } else {
            println!(
                "{:>9} {:>7} {:>8.2} {:>8.2} {:>8.2}ms {:>8.2}ms {:>7}",
                r.profiles, r.rs256, r.seed_s, r.start_s, r.write_p50_ms, r.write_p99_ms, r.writes
            );
        }
        results.push(r);
    }
    Ok(results)
}

/// A state with `profiles` profiles, 20 per client, every 4th RS256.
fn scale_state(profiles: usize) -> Result<(State, usize), BenchError> {
    let seed = |e: crate::tools::demo::SeedError| BenchError::new(e.to_string());
    let mut state = State::default();
    let collection = add_collection(
        &mut state,
        "Scale",
        "scale",
        vec![hello_endpoint("GET", "/hello").map_err(seed)?],
    )
    .map_err(seed)?;
    let mut client = String::new();
    let mut rs256 = 0;
    for n in 0..profiles {
        if n % 20 == 0 {
            client = add_client(&mut state, &format!("client {n}")).map_err(seed)?;
        }
        let auth = if n % 4 == 3 {
            rs256 += 1;
            jwt_auth(JwtAlg::RS256, None, Some(BENCH_RSA_PUBLIC_PEM.into()))
        } else {
            AuthConfig::Token
        };
        add_profile(
            &mut state,
            &client,
            &format!("p{n}"),
            vec![collection.clone()],
            auth,
        )
        .map_err(seed)?;
    }
    Ok((state, rs256))
}

fn one_size(size: usize, store: Option<&str>) -> Result<ScaleResult, BenchError> {
    let temp = TempDir::new()?;
    let (state, rs256) = scale_state(size)?;
    let runtime = super::runtime("store-scale", 2)?;
    let database = match store {
        Some(url) => Some(runtime.block_on(super::cluster::fresh_database(url))?),
        None => None,
    };
    let seeded = Instant::now();
    match &database {
        None => {
            let (secrets, _) = load_or_create_secrets_key(temp.path(), None, true)
                .map_err(BenchError::from_display)?;
            let (store, _) =
                SqliteStore::open(temp.path(), secrets).map_err(BenchError::from_display)?;
            store
                .commit(&ChangeSet::from_state(&state))
                .map_err(BenchError::from_display)?;
        }
        Some(url) => {
            let store = runtime.block_on(super::cluster::pg_store(url))?;
            let rows = ChangeSet::from_state(&state);
            // The store's blocking calls must run off the runtime's workers.
            std::thread::scope(|scope| scope.spawn(|| store.commit(&rows)).join())
                .map_err(|_| BenchError::new("the seeding thread failed"))?
                .map_err(BenchError::from_display)?;
        }
    }
    let seed_s = seeded.elapsed().as_secs_f64();

    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let started = Instant::now();
    let running = runtime
        .block_on(start(ServeConfig {
            listen: loopback,
            admin_listen: loopback,
            data_dir: temp.path().to_owned(),
            admin_key: Some(BENCH_ADMIN_KEY.to_owned()),
            secrets_key: Some(super::cluster::BENCH_SECRETS_KEY.to_owned()),
            store: database.clone(),
            ..ServeConfig::default()
        }))
        .map_err(BenchError::from_display)?;
    let start_s = started.elapsed().as_secs_f64();

    let base =
        BaseUrl::parse(&format!("http://{}", running.admin_addr)).map_err(BenchError::new)?;
    let client = AdminClient::new(base, BENCH_ADMIN_KEY.to_owned(), KeyOrigin::Environment)
        .map_err(BenchError::new)?;
    let mut times: Vec<Duration> = Vec::with_capacity(WRITES);
    for i in 0..WRITES {
        let profile = &state.profiles[(i * 7919) % state.profiles.len()].id;
        let (method, path, body) = match i % 5 {
            0 => (
                Method::PATCH,
                format!("/v1/profiles/{profile}"),
                Some(json!({"name": format!("renamed {i}")})),
            ),
            1 => (
                Method::POST,
                format!("/v1/profiles/{profile}/refresh"),
                None,
            ),
            2 => (
                Method::POST,
                "/v1/clients".to_owned(),
                Some(json!({"name": format!("new client {i}")})),
            ),
            3 => (
                Method::PATCH,
                format!("/v1/profiles/{profile}"),
                Some(json!({"active": false})),
            ),
            _ => (
                Method::PATCH,
                format!("/v1/profiles/{profile}"),
                Some(json!({"active": true})),
            ),
        };
        let sent = Instant::now();
        let answer = client
            .call(method, &path, body.as_ref())
            .map_err(BenchError::from_display)?;
        times.push(sent.elapsed());
        if !answer.status.is_success() {
            return Err(BenchError::new(format!(
                "admin write {path} answered {}",
                answer.status
            )));
        }
    }
    runtime.block_on(running.shutdown());
    if let (Some(url), Some(database)) = (store, &database) {
        runtime.block_on(super::cluster::drop_database(url, database));
    }
    times.sort();
    let quantile = |q: f64| {
        let index = ((times.len() as f64 - 1.0) * q).round() as usize;
        times[index].as_secs_f64() * 1000.0
    };
    Ok(ScaleResult {
        profiles: size,
        rs256,
        seed_s,
        start_s,
        write_p50_ms: quantile(0.5),
        write_p99_ms: quantile(0.99),
        writes: times.len(),
    })
}
