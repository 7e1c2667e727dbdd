#!/usr/bin/env python3
"""Summarizes compare.sh's runs: medians per system and scenario, and tokengate's ratios.

Usage: report.py RUNS_JSONL OUT_JSON|'' PREFLIGHT_FAILED_FILE
Settings come from compare.sh in the environment (TG_COMMIT, TG_CONNECTIONS, TG_DURATION,
TG_ROUNDS, TG_WARMUP, TG_SYSTEMS, TG_SCENARIOS, TG_HAPROXY_VERSION, TG_HAPROXY_THREADS,
TG_TOKEN_SIGNER, TG_TOKEN_COUNT, TG_UNKNOWN_COUNT).

Two CPU ratios are printed for tokengate against each other system:
- `cpu tokengate/X`: the median of tokengate's CPU per request over the median of X's;
- `paired`: the median, over rounds, of tokengate's CPU per request over X's in the same
  round. The systems of a round run back to back, so drift of the host over minutes (steal,
  a neighbour's load) lands on both sides of a pair and cancels; the range shows the
  scatter of single rounds.
"""
import datetime
import json
import os
import statistics
import sys


def env(name, default=""):
    return os.environ.get(name, default)


def median_cell(mine):
    return {
        "rps": round(statistics.median(r["rps"] for r in mine)),
        "p50_ms": statistics.median(r["p50_us"] for r in mine) / 1000,
        "p99_ms": statistics.median(r["p99_us"] for r in mine) / 1000,
        "cpu_us": statistics.median(r["server_cpu_us_per_request"] for r in mine),
        "runs": len(mine),
        "runs_with_errors": sum(r["verdict"] != "ok" for r in mine),
        "max_steal_pct": max(r.get("host_steal_pct", 0) for r in mine),
    }


def paired_ratios(runs, scenario, system, other):
    """tokengate's CPU per request over `other`'s, one ratio per round both ran in."""
    by_round = {}
    for r in runs:
        if r["scenario"] == scenario and r["system"] in (system, other):
            by_round.setdefault(r["round"], {})[r["system"]] = r["server_cpu_us_per_request"]
    return [
        pair[system] / pair[other]
        for _, pair in sorted(by_round.items())
        if pair.get(system) and pair.get(other)
    ]


def main():
    runs_file, out, preflight_file = sys.argv[1], sys.argv[2], sys.argv[3]
    runs = [json.loads(line) for line in open(runs_file) if line.strip()]
    preflight_failed = (
        set(open(preflight_file).read().split()) if os.path.exists(preflight_file) else set()
    )
    systems = env("TG_SYSTEMS").split(",")
    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git_commit": env("TG_COMMIT", "unknown"),
        "cores": os.cpu_count(),
        "wrk": f"wrk -t1 -c{env('TG_CONNECTIONS')} -d{env('TG_DURATION')} --latency",
        "rounds": int(env("TG_ROUNDS", "0")),
        "warmup": env("TG_WARMUP"),
        "systems": systems,
        "haproxy": {"version": env("TG_HAPROXY_VERSION"), "nbthread": int(env("TG_HAPROXY_THREADS", "0"))}
        if "haproxy" in systems
        else None,
        "token_signer": env("TG_TOKEN_SIGNER"),
        "rs256_unique_tokens": int(env("TG_TOKEN_COUNT", "0")),
        "unknown_tokens": int(env("TG_UNKNOWN_COUNT", "0")),
        "notes": "tokengate rs256-miss runs with --cache-capacity 0; noauth has no tokengate run; "
        "unknown expects 401 (tokengate) / 403 (haproxy); tls* share tests/data/tls's "
        "certificate and have no bare run; CPU = server utime+stime / requests; "
        "paired = median over rounds of the same round's CPU ratio; "
        "steal% = the largest share of the host's CPU time the hypervisor took during a run",
    }
    summary = {}
    for scenario in env("TG_SCENARIOS").split(","):
        row = {}
        for system in systems:
            mine = [r for r in runs if r["scenario"] == scenario and r["system"] == system]
            if f"{system}:{scenario}" in preflight_failed:
                row[system] = {"preflight_failed": True}
            elif mine:
                row[system] = median_cell(mine)
        tg = row.get("tokengate", {})
        for other in ("bare", "haproxy"):
            if "rps" in tg and row.get(other, {}).get("rps"):
                row[f"tokengate/{other}"] = round(tg["rps"] / row[other]["rps"], 3)
            if "cpu_us" in tg and row.get(other, {}).get("cpu_us"):
                row[f"cpu tokengate/{other}"] = round(tg["cpu_us"] / row[other]["cpu_us"], 3)
                pairs = paired_ratios(runs, scenario, "tokengate", other)
                if pairs:
                    row[f"paired cpu tokengate/{other}"] = round(statistics.median(pairs), 3)
                    row[f"paired cpu tokengate/{other} range"] = [
                        round(min(pairs), 3),
                        round(max(pairs), 3),
                    ]
        summary[scenario] = row
    print_table(meta, summary, systems)
    print("JSON summary:", json.dumps({"meta": meta, "summary": summary}))
    if out:
        with open(out, "w") as f:
            json.dump({"meta": meta, "summary": summary, "runs": runs}, f, indent=1)
            f.write("\n")
        print(f"full results (every run) written to {out}")


def print_table(meta, summary, systems):
    print()
    print(
        f"tokengate load test  {meta['date']}  commit {meta['git_commit']}  {meta['cores']} cores  "
        f"{meta['wrk']}  medians of {meta['rounds']} rounds"
    )
    signer = f"token signer: {meta['token_signer']}"
    if meta["haproxy"]:
        print(f"haproxy {meta['haproxy']['version']} nbthread {meta['haproxy']['nbthread']}   {signer}")
    else:
        print(signer)
    print(f"notes: {meta['notes']}")
    print()
    print(
        f"{'scenario':<13} {'system':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU us/req':>10}  {'runs':>4}  {'steal%':>6}  errors"
    )
    for scenario, row in summary.items():
        for system in systems:
            cell = row.get(system)
            if cell is None:
                print(f"{scenario:<13} {system:<10} {'n/a':>9}")
                continue
            if cell.get("preflight_failed"):
                print(
                    f"{scenario:<13} {system:<10} {'-':>9} {'-':>8} {'-':>8} {'-':>10}  "
                    f"{0:>4}  PREFLIGHT FAILED  !!!"
                )
                continue
            flag = f"{cell['runs_with_errors']} runs  !!!" if cell["runs_with_errors"] else "-"
            print(
                f"{scenario:<13} {system:<10} {cell['rps']:>9} {cell['p50_ms']:>8.2f} "
                f"{cell['p99_ms']:>8.2f} {cell['cpu_us']:>10.2f}  {cell['runs']:>4}  "
                f"{cell['max_steal_pct']:>6.1f}  {flag}"
            )
        ratios = "  ".join(
            f"{k} = {v:.2f}"
            for k, v in row.items()
            if "/" in k and not k.startswith("paired")
        )
        if ratios:
            print(f"{'':<13} {ratios}")
        paired = "  ".join(
            f"{k} = {v:.2f} (rounds {row[k + ' range'][0]:.2f}-{row[k + ' range'][1]:.2f})"
            for k, v in row.items()
            if k.startswith("paired") and not k.endswith("range")
        )
        if paired:
            print(f"{'':<13} {paired}")
        print()


if __name__ == "__main__":
    main()
