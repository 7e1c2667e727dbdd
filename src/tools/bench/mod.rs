//! `tokengate bench`: the embedded benchmark harness.
//!
//! It starts the real front door in-process on a free loopback port over a temporary file store
//! ([`setup`]), drives it with an in-process HTTP/1.1 keep-alive load generator ([`load`]), and
//! prints one row per scenario ([`report`]): requests/s, p50/p99 latency from a log-bucketed
//! histogram ([`histogram`]), the token-cache hit ratio from the server's own counters, and the
//! count of unexpected outcomes.
//!
//! Scenarios:
//!
//! | name | request |
//! |---|---|
//! | `api-token` | `API-Token` header, fixed-response endpoint |
//! | `hs256` | one repeated HS256 JWT |
//! | `rs256` | one repeated RS256 JWT (cache hits after the first) |
//! | `rs256-miss` | one RS256 JWT against a second front door with `cache_capacity: 0`: every request checks the signature |
//! | `unknown` | unknown auth token, JWT with an unknown `sub`, garbage bearer, in rotation: all 401 |
//! | `forward` | `API-Token` through the proxy to an in-process upstream answering `200 {"ok":true}` |
//! | `quota` | `API-Token` of a profile with a quota (2^40 − 1 a day, never used up) to the same endpoint as `api-token`: the cost of counting |
//! | `verify` | forward-auth: `API-Token` to `/_tokengate/verify` naming `GET /bench/hello` in `X-Forwarded-Method`/`-Uri` (Traefik's and Caddy's request); 200 with the identity headers |
//!
//! `--store-scale N,…` runs [`store_scale`] instead: start time and admin write latency with N
//! profiles stored. `--store postgres://…` alone runs [`cluster`]: three nodes, commit-to-applied
//! propagation p50/p99.
//!
//! Why `rs256-miss` uses an uncached server rather than a pool of unique tokens (varying `jti`):
//! every token needs its own RSA signature (`openssl speed rsa2048`: 0.22 ms per sign on the
//! 2-core development machine), and at the ~30k verifications/s seen there a 5 s run would need
//! ~150k tokens, over 30 s of signing before 5 s of measurement. The uncached server makes every
//! request verify the signature just the same; what it leaves out is the cache lookup and insert
//! a real miss also pays (the `hs256`/`rs256` rows show what a lookup costs).
//!
//! Runtime layout: by default the server runs on its own multi-thread runtime (one worker per
//! core) and the generator on a second runtime with one worker (`--layout split`), so that the
//! generator's cost stays on its own thread and the server's CPU time per request ([`cpu`]) is
//! the server's alone; `--layout shared` runs both on the server's runtime. Measured on the
//! 2-core development machine (A B A B, 2 s per scenario): requests/s within noise of each other
//! (api-token 61k/76k split vs 57k/78k shared); the generator costs about 5 µs of CPU per request
//! (api-token: 7 µs/request server-only in split, 12 µs/request server + generator in shared).

pub mod cluster;
pub mod cpu;
pub mod histogram;
pub mod load;
pub mod report;
pub mod setup;
pub mod store_scale;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::runtime::Runtime;

use self::load::{LoadPlan, LoadReport};
use self::report::{RunInfo, RunReport, ScenarioResult};
use self::setup::Bench;

/// A benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// `API-Token` header.
    ApiToken,
    /// One repeated HS256 JWT.
    Hs256,
    /// One repeated RS256 JWT.
    Rs256,
    /// RS256 with the token cache off: a signature check on every request.
    Rs256Miss,
    /// Unknown and garbage credentials, all refused with 401.
    Unknown,
    /// Through the proxy to an in-process upstream.
    Forward,
    /// Forward-auth: `/_tokengate/verify` naming the fixed-response endpoint.
    Verify,
    /// `API-Token` of a profile with a quota.
    Quota,
    /// `API-Token` over HTTPS on keep-alive connections (TLS record cost).
    Tls,
    /// `API-Token` over HTTPS with `Connection: close`: a full TLS handshake for every request.
    TlsHandshake,
}

impl Scenario {
    /// Every scenario, in run order.
    pub const ALL: [Scenario; 10] = [
        Scenario::ApiToken,
        Scenario::Quota,
        Scenario::Verify,
        Scenario::Hs256,
        Scenario::Rs256,
        Scenario::Rs256Miss,
        Scenario::Unknown,
        Scenario::Forward,
        Scenario::Tls,
        Scenario::TlsHandshake,
    ];

    /// The name on the command line and at the start of the table row.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::ApiToken => "api-token",
            Scenario::Hs256 => "hs256",
            Scenario::Rs256 => "rs256",
            Scenario::Rs256Miss => "rs256-miss",
            Scenario::Unknown => "unknown",
            Scenario::Forward => "forward",
            Scenario::Verify => "verify",
            Scenario::Quota => "quota",
            Scenario::Tls => "tls",
            Scenario::TlsHandshake => "tls-handshake",
        }
    }
}

/// How the server and the load generator share threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Layout {
    /// Separate runtimes: the server's (`--threads` workers) and the generator's (`--load-threads`).
    Split,
    /// One runtime (`--threads` workers) for both.
    Shared,
}

/// Flags of `tokengate bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Measured time per scenario, e.g. 500ms, 3s, 1m.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Concurrent keep-alive connections per scenario.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Scenarios to run, repeatable or comma-separated (default: all).
    #[arg(long = "scenario", value_enum, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,
    /// Worker threads of the server's runtime (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Worker threads of the load generator's runtime (split layout only).
    #[arg(long, default_value_t = 1)]
    pub load_threads: usize,
    /// Separate runtimes for server and generator, or one shared runtime.
    #[arg(long, value_enum, default_value_t = Layout::Split)]
    pub layout: Layout,
    /// Runtime layout of the front door's data plane, as `serve --layout` (per-core or shared).
    #[arg(long, default_value = "shared")]
    pub data_layout: crate::door::layout::Layout,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Turn the front door's access log on, to this file (`-` would mix it into the report),
    /// to measure its cost.
    #[arg(long, value_name = "PATH")]
    pub access_log: Option<String>,
    /// Instead of the scenarios: seed the embedded store with each of these numbers of profiles
    /// and measure start time and admin write latency (`--store-scale 1000,10000,100000`).
    #[arg(long, value_name = "N,N,…", value_delimiter = ',')]
    pub store_scale: Vec<usize>,
    /// Instead of the scenarios: start three nodes on this PostgreSQL server (in a new database)
    /// and measure commit-to-applied propagation over `--propagation-changes` changes; with
    /// `--store-scale`, run the scale benchmark on PostgreSQL.
    #[arg(long, value_name = "postgres://…")]
    pub store: Option<String>,
    /// Changes timed by the propagation benchmark.
    #[arg(long, default_value_t = 1000)]
    pub propagation_changes: usize,
}

/// Why the harness could not run.
#[derive(Debug)]
pub struct BenchError(String);

impl BenchError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> BenchError {
        BenchError(message.into())
    }

    /// An error carrying another error's message.
    pub fn from_display(error: impl std::fmt::Display) -> BenchError {
        BenchError(error.to_string())
    }
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

/// Parses `500ms`, `3s`, `1.5s`, `2m`, `250us`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 3s or 1m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("{other:?} is not a unit; use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} must be a positive duration"))
}

/// Runs the harness; returns the process exit code (1 when it could not run or saw unexpected
/// outcomes: numbers from a server that answers wrongly are not worth reporting as fine).
pub fn run(args: BenchArgs) -> i32 {
    if let (Some(url), true) = (&args.store, args.store_scale.is_empty()) {
        return match cluster::run(url, args.propagation_changes) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        };
    }
    if !args.store_scale.is_empty() {
        return match store_scale::run(&args.store_scale, args.store.as_deref(), args.json) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        };
    }
    match run_bench(&args) {
        Ok(results) => {
            let errors: u64 = results.iter().map(|r| r.errors).sum();
            let idle: Vec<&str> = results
                .iter()
                .filter(|r| r.requests == 0)
                .map(|r| r.scenario)
                .collect();
            for result in results.iter().filter(|r| r.errors > 0) {
                eprintln!(
                    "error: {}: {} unexpected outcome(s), first: {}",
                    result.scenario,
                    result.errors,
                    result.first_error.as_deref().unwrap_or("?")
                );
            }
            if !idle.is_empty() {
                eprintln!("error: no request completed in {}", idle.join(", "));
            }
            i32::from(errors > 0 || !idle.is_empty())
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

pub(super) fn runtime(name: &str, workers: usize) -> Result<Runtime, BenchError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| BenchError::new(format!("cannot start the {name} runtime: {e}")))
}

fn run_bench(args: &BenchArgs) -> Result<Vec<ScenarioResult>, BenchError> {
    let scenarios: Vec<Scenario> = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        // Run order is the canonical one, each scenario once.
        Scenario::ALL
            .into_iter()
            .filter(|s| args.scenarios.contains(s))
            .collect()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server_threads = args.threads.unwrap_or(cores).max(1);
    let connections = args.connections.max(1);

    let server_rt = runtime(cpu::SERVER_THREAD, server_threads)?;
    let load_rt = match args.layout {
        Layout::Split => Some(runtime(cpu::LOAD_THREAD, args.load_threads)?),
        Layout::Shared => None,
    };
    let load_rt_ref = load_rt.as_ref().unwrap_or(&server_rt);

    let info = RunInfo {
        date: report::utc_now(),
        cores,
        connections,
        duration_ms: u64::try_from(args.duration.as_millis()).unwrap_or(u64::MAX),
        layout: match args.layout {
            Layout::Split => "split",
            Layout::Shared => "shared",
        },
        data_plane: match args.data_layout {
            crate::door::layout::Layout::Shared => "shared: on the server runtime (work stealing)".to_owned(),
            crate::door::layout::Layout::PerCore(n) => {
                format!("per-core: {n} current-thread runtime(s) on SO_REUSEPORT listeners (counted as server CPU)")
            }
        },
        server_threads,
        load_threads: match args.layout {
            Layout::Split => args.load_threads.max(1),
            Layout::Shared => server_threads,
        },
        rs256_miss: "a second front door with cache_capacity 0 and one token: every request checks the RSA signature",
        unknown: "unknown API-Token, JWT with unknown sub, garbage bearer in rotation; 401 is the expected outcome",
        forward: "API-Token through the proxy to an in-process hyper upstream answering 200 {\"ok\":true} (on the server runtime: its CPU counts as the server's)",
    };

    // Tokens must outlive the run: an hour plus the whole run.
    let run_s = args.duration.as_secs().saturating_add(1) * scenarios.len() as u64;
    let lifetime_s = i64::try_from(run_s.saturating_add(3600)).unwrap_or(i64::MAX / 2);
    let needs_uncached = scenarios.contains(&Scenario::Rs256Miss);
    let needs_tls = scenarios
        .iter()
        .any(|s| matches!(s, Scenario::Tls | Scenario::TlsHandshake));
    let bench = server_rt.block_on(Bench::start(
        needs_uncached,
        needs_tls,
        lifetime_s,
        args.data_layout,
        args.access_log.clone(),
    ))?;

    let mut stdout = std::io::stdout().lock();
    if !args.json {
        let _ = writeln!(stdout, "{}", report::header(&info));
        let _ = stdout.flush();
    }
    let mut results = Vec::with_capacity(scenarios.len());
    let mut failure = None;
    for scenario in scenarios {
        let split = args.layout == Layout::Split;
        match run_scenario(
            &bench,
            scenario,
            connections,
            args.duration,
            load_rt_ref,
            split,
        ) {
            Ok(result) => {
                if !args.json {
                    let _ = writeln!(stdout, "{}", report::row(&result));
                    let _ = stdout.flush();
                }
                results.push(result);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    server_rt.block_on(bench.shutdown());
    if let Some(load_rt) = load_rt {
        load_rt.shutdown_timeout(Duration::from_secs(1));
    }
    server_rt.shutdown_timeout(Duration::from_secs(1));
    if let Some(e) = failure {
        return Err(e);
    }

    if args.json {
        let document = RunReport {
            info: &info,
            scenarios: &results,
        };
        let text = serde_json::to_string_pretty(&document).map_err(BenchError::from_display)?;
        let _ = writeln!(stdout, "{text}");
    }
    Ok(results)
}

/// Runs one scenario and turns the generator's report and the server's counters into a row.
fn run_scenario(
    bench: &Bench,
    scenario: Scenario,
    connections: usize,
    duration: Duration,
    load_rt: &Runtime,
    split: bool,
) -> Result<ScenarioResult, BenchError> {
    let target = bench.target(scenario)?;
    let metrics = &target.server.door.metrics;
    let cache_off = target.server.door.gate.cache().is_none();
    let plan = LoadPlan {
        addr: target.server.data_addr,
        requests: Arc::from(target.requests),
        expected_status: target.expected_status,
        connections,
        duration,
        tls: target.tls.clone(),
    };
    let mut before = (0, 0);
    let mut cpu_before = None;
    let outcome: LoadReport = load_rt.block_on(load::run(plan, || {
        before = metrics.cache_counts();
        cpu_before = cpu::sample();
    }));
    let after = metrics.cache_counts();
    let cpu_used = cpu::sample()
        .zip(cpu_before)
        .map(|(after, before)| after.since(&before));
    let hits = after.0.saturating_sub(before.0);
    let misses = after.1.saturating_sub(before.1);
    let seconds = outcome.elapsed.as_secs_f64();
    let micros = |nanos: u64| nanos as f64 / 1e3;
    Ok(ScenarioResult {
        scenario: scenario.name(),
        requests: outcome.requests,
        requests_per_s: if seconds > 0.0 {
            outcome.requests as f64 / seconds
        } else {
            0.0
        },
        p50_us: micros(outcome.latency.percentile(50.0)),
        p99_us: micros(outcome.latency.percentile(99.0)),
        p999_us: micros(outcome.latency.percentile(99.9)),
        max_us: micros(outcome.latency.max()),
        server_cpu_s: cpu_used.map(|cpu| cpu.server.as_secs_f64()),
        load_cpu_s: cpu_used.filter(|_| split).map(|cpu| cpu.load.as_secs_f64()),
        cpu_us_per_request: cpu_used
            .filter(|_| outcome.requests > 0)
            .map(|cpu| cpu.server.as_secs_f64() * 1e6 / outcome.requests as f64),
        server_cores: cpu_used
            .filter(|_| seconds > 0.0)
            .map(|cpu| cpu.server.as_secs_f64() / seconds),
        cache_hits: hits,
        cache_misses: misses,
        cache_hit_ratio: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
        cache_off,
        expected_status: target.expected_status,
        errors: outcome.errors,
        first_error: outcome.first_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn scenario_names_match_the_command_line() {
        for scenario in Scenario::ALL {
            let parsed = Scenario::from_str(scenario.name(), false);
            assert_eq!(parsed, Ok(scenario));
        }
    }
}
