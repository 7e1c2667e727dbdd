//! What the harness prints: a header, one table row per scenario (each line starting with the
//! scenario's name, for `grep '^hs256\b'`), or the same as one JSON document with `--json`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The conditions of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// UTC date and time of the start, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// Cores the OS reports.
    pub cores: usize,
    /// Concurrent connections per scenario.
    pub connections: usize,
    /// Measured time per scenario, milliseconds.
    pub duration_ms: u64,
    /// `split` (separate runtimes) or `shared` (one runtime).
    pub layout: &'static str,
    /// The front door's data-plane layout, as `serve --layout` runs it.
    pub data_plane: String,
    /// Worker threads of the server's runtime (admin API, upstream; the data plane with `shared`).
    pub server_threads: usize,
    /// Worker threads of the load generator's runtime (the server's with `shared`).
    pub load_threads: usize,
    /// How `rs256-miss` forces a signature check on every request.
    pub rs256_miss: &'static str,
    /// What `forward` measures.
    pub forward: &'static str,
    /// What `unknown` sends.
    pub unknown: &'static str,
}

/// One scenario's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// Scenario name.
    pub scenario: &'static str,
    /// Responses received in the measured phase.
    pub requests: u64,
    /// Responses per second over the measured phase.
    pub requests_per_s: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// 99.9th percentile latency, microseconds.
    pub p999_us: f64,
    /// Largest latency, microseconds.
    pub max_us: f64,
    /// CPU time of the server runtime's threads during the measured phase, seconds (with the
    /// shared layout it includes the generator); `null` where `/proc` is not available.
    pub server_cpu_s: Option<f64>,
    /// CPU time of the generator runtime's threads, seconds (split layout only).
    pub load_cpu_s: Option<f64>,
    /// Server CPU time per response, microseconds: the work a request cost, whatever share of
    /// the cores the run was given.
    pub cpu_us_per_request: Option<f64>,
    /// Server CPU time over wall time: how many cores the server actually got.
    pub server_cores: Option<f64>,
    /// Token-cache hits counted by the server during the measured phase.
    pub cache_hits: u64,
    /// Token-cache misses counted by the server during the measured phase.
    pub cache_misses: u64,
    /// `hits / (hits + misses)`; `null` when the cache was not consulted (auth tokens, refusals
    /// before verification, or the cache turned off).
    pub cache_hit_ratio: Option<f64>,
    /// Whether the server had its token cache turned off.
    pub cache_off: bool,
    /// The status every response should have carried.
    pub expected_status: u16,
    /// Unexpected statuses, broken connections and malformed responses.
    pub errors: u64,
    /// The first error, if any.
    pub first_error: Option<String>,
}

/// The whole run, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct RunReport<'a> {
    /// The conditions.
    #[serde(flatten)]
    pub info: &'a RunInfo,
    /// One entry per scenario, in run order.
    pub scenarios: &'a [ScenarioResult],
}

/// Human form of a duration flag value: `500ms`, `3s`, `1.5s`.
pub fn human_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 && ms.is_multiple_of(100) {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}

/// Widths of the table's columns after the scenario name.
const COLUMNS: [(&str, usize); 7] = [
    ("req/s", 9),
    ("p50 µs", 9),
    ("p99 µs", 9),
    ("cache hit", 10),
    ("errors", 7),
    ("cpu µs/req", 11),
    ("server cores", 13),
];

/// The header lines of the table (each starts with `#`), then the column titles.
pub fn header(info: &RunInfo) -> String {
    let layout = if info.layout == "split" {
        format!(
            "split — server runtime {} worker(s), load-generator runtime {} worker(s)",
            info.server_threads, info.load_threads
        )
    } else {
        format!(
            "shared — one runtime of {} worker(s) for server and load generator \
             (cpu columns include the generator)",
            info.server_threads
        )
    };
    let mut text = format!(
        "# tokengate bench · {} · {} cores · {} connections · {} per scenario\n\
         # layout: {layout}\n\
         # data plane: {}\n\
         # generator: raw HTTP/1.1 over keep-alive connections, sequential requests on each\n\
         # rs256-miss: {}\n\
         # unknown: {}\n\
         # forward: {}\n\
         # cpu µs/req: server CPU time per request; server cores: server CPU time / wall time\n\
         #\n\
         {:<12}",
        info.date,
        info.cores,
        info.connections,
        human_duration(Duration::from_millis(info.duration_ms)),
        info.data_plane,
        info.rs256_miss,
        info.unknown,
        info.forward,
        "scenario",
    );
    for (title, width) in COLUMNS {
        text.push_str(&format!(" {title:>width$}"));
    }
    text
}

/// A latency in microseconds, with as many decimals as make sense.
fn micros(us: f64) -> String {
    if us >= 100.0 {
        format!("{us:.0}")
    } else if us >= 10.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.2}")
    }
}

/// One table row, starting with the scenario's name.
pub fn row(result: &ScenarioResult) -> String {
    let cache = match (result.cache_off, result.cache_hit_ratio) {
        (true, _) => "off".to_string(),
        (false, Some(ratio)) => format!("{:.1}%", ratio * 100.0),
        (false, None) => "—".to_string(),
    };
    let or_dash = |value: Option<f64>, decimals: usize| {
        value.map_or_else(|| "—".to_string(), |v| format!("{v:.decimals$}"))
    };
    let cells = [
        format!("{:.0}", result.requests_per_s),
        micros(result.p50_us),
        micros(result.p99_us),
        cache,
        result.errors.to_string(),
        or_dash(result.cpu_us_per_request, 1),
        or_dash(result.server_cores, 2),
    ];
    let mut line = format!("{:<12}", result.scenario);
    for (cell, (_, width)) in cells.iter().zip(COLUMNS) {
        line.push_str(&format!(" {cell:>width$}"));
    }
    line
}

/// The current UTC date and time as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_date(secs)
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time (civil-from-days, proleptic Gregorian).
fn utc_date(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let minute_of_day = (unix_s % 86_400) / 60;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minute_of_day / 60,
        minute_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_795_910_400 + 3_661), "2026-11-29 01:01 UTC");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(human_duration(Duration::from_secs(3)), "3s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human_duration(Duration::from_millis(1250)), "1250ms");
    }

    #[test]
    fn rows_start_with_the_scenario() {
        let result = ScenarioResult {
            scenario: "rs256-miss",
            requests: 10,
            requests_per_s: 5.0,
            p50_us: 1.0,
            p99_us: 2.0,
            p999_us: 2.0,
            max_us: 2.0,
            server_cpu_s: Some(0.5),
            load_cpu_s: None,
            cpu_us_per_request: Some(12.5),
            server_cores: Some(0.9),
            cache_hits: 0,
            cache_misses: 0,
            cache_hit_ratio: None,
            cache_off: true,
            expected_status: 200,
            errors: 0,
            first_error: None,
        };
        let line = row(&result);
        assert!(line.starts_with("rs256-miss "), "{line}");
        assert!(line.contains("off"));
    }
}
