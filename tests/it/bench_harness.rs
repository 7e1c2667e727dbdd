//! `tokengate bench` really drives the server: the binary runs every scenario briefly and reports
//! completed requests and no unexpected outcome for each.

use std::process::Command;

use serde_json::Value;

const SCENARIOS: [&str; 10] = [
    "api-token",
    "quota",
    "verify",
    "hs256",
    "rs256",
    "rs256-miss",
    "unknown",
    "forward",
    "tls",
    "tls-handshake",
];

fn bench(args: &[&str]) -> (std::process::Output, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run tokengate bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, stdout)
}

#[test]
fn every_scenario_completes_requests_without_errors() {
    let (output, stdout) = bench(&["--duration", "200ms", "--connections", "4", "--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let report: Value = serde_json::from_str(&stdout).expect("stdout is one JSON document");
    assert_eq!(report["connections"], 4);
    assert_eq!(report["duration_ms"], 200);
    let rows = report["scenarios"].as_array().expect("scenarios array");
    for name in SCENARIOS {
        let row = rows
            .iter()
            .find(|row| row["scenario"] == name)
            .unwrap_or_else(|| panic!("no {name} in {stdout}"));
        assert!(row["requests"].as_u64().unwrap() > 0, "{name}: {row}");
        assert!(
            row["requests_per_s"].as_f64().unwrap() > 0.0,
            "{name}: {row}"
        );
        assert!(row["p50_us"].as_f64().unwrap() > 0.0, "{name}: {row}");
        assert!(
            row["p99_us"].as_f64().unwrap() >= row["p50_us"].as_f64().unwrap(),
            "{name}: {row}"
        );
        assert_eq!(row["errors"], 0, "{name}: {row}");
    }
    // The server's own counters back the harness: repeated JWTs hit the cache, and the
    // uncached server of rs256-miss never consults one.
    let row = |name: &str| rows.iter().find(|row| row["scenario"] == name).unwrap();
    assert!(row("hs256")["cache_hits"].as_u64().unwrap() > 0);
    assert!(row("rs256")["cache_hit_ratio"].as_f64().unwrap() > 0.9);
    assert_eq!(row("rs256-miss")["cache_off"], true);
    assert_eq!(row("rs256-miss")["cache_hits"], 0);
    assert_eq!(row("unknown")["expected_status"], 401);
}

#[test]
fn table_rows_start_with_the_scenario_name() {
    let (output, stdout) = bench(&[
        "--duration",
        "100ms",
        "--connections",
        "2",
        "--scenario",
        "api-token,unknown",
        "--scenario",
        "forward",
    ]);
    assert!(output.status.success(), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    for name in ["api-token", "unknown", "forward"] {
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with(&format!("{name} "))),
            "no row for {name}:\n{stdout}"
        );
    }
    for name in ["hs256", "rs256"] {
        assert!(
            !lines.iter().any(|line| line.starts_with(name)),
            "{name} was not asked for:\n{stdout}"
        );
    }
    assert!(lines[0].starts_with("# tokengate bench"), "{stdout}");
}
