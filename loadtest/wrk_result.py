#!/usr/bin/env python3
"""Reads wrk's output on stdin and prints one JSON object: the TG_RESULT line that
loadtest/common.lua's done() hook prints when wrk ran with a Lua script, or else the same
numbers parsed from wrk's own text (run with --latency), so that fixed headers can be passed
with -H and wrk runs without any script.

Keys: requests, duration_s, rps, mean_us, p50_us, p90_us, p99_us, max_us, non2xx,
socket_errors. Exit status 1 (and nothing printed) when the output holds no result."""
import json
import re
import sys

UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def micros(text):
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse(output):
    for line in output.splitlines():
        if line.startswith("TG_RESULT "):
            return json.loads(line[len("TG_RESULT "):])
    done = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", output, re.M)
    if not done:
        return None
    requests = int(done.group(1))
    duration_us = micros(done.group(2) + done.group(3))
    latency = re.search(r"^\s*Latency\s+(\S+)\s+\S+\s+(\S+)", output, re.M)
    percentiles = dict(re.findall(r"^\s*(50|90|99)%\s+(\S+)", output, re.M))
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests": requests,
        "duration_s": round(duration_us / 1e6, 3),
        "rps": round(requests / (duration_us / 1e6), 1),
        "mean_us": round(micros(latency.group(1)), 1) if latency else 0.0,
        "p50_us": int(micros(percentiles["50"])) if "50" in percentiles else 0,
        "p90_us": int(micros(percentiles["90"])) if "90" in percentiles else 0,
        "p99_us": int(micros(percentiles["99"])) if "99" in percentiles else 0,
        "max_us": int(micros(latency.group(2))) if latency else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(n) for n in socket.groups()) if socket else 0,
    }


def main():
    result = parse(sys.stdin.read())
    if result is None:
        sys.exit(1)
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
