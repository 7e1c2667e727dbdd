#!/usr/bin/env bash
# Counts the user-space instructions each request costs, bare hyper beside tokengate, with
# valgrind's callgrind: a count that does not move with the host. On this shared 2-core VM
# the CPU time per request that compare.sh reports swings by 10-40 % between 5-second runs
# of the same binary (2026-12-03: bare hyper's own 6.5-34 us), so a change of 1-3 % is
# invisible there and plain here. Use it for A/B of a change to the hot path; use
# compare.sh for what users see (kernel time included, which this does not count).
#
# For each scenario and system: start the server under callgrind with instrumentation off,
# warm it up (connection memos, the verified-token cache, the refusal memo), switch
# instrumentation on for one wrk run, dump, divide the program's instruction total by the
# requests wrk completed. Setup (data dir, profiles, tokens) is compare.sh's, run once with
# KEEP_TMP=1 ROUNDS=1 DURATION=1s SYSTEMS=bare,tokengate.
#
# Environment (defaults in brackets):
#   SCENARIOS [api-token,hs256,rs256,unknown]   (compare.sh's names; rs256-miss adds
#             --cache-capacity 0 to tokengate)
#   CONNECTIONS [8]  WARMUP [6s]  DURATION [4s]   wrk -t1 for both
#   TOKENGATE [target/release/tokengate]  HELLO [target/release/examples/hello]
#   SKIP_BUILD=1   do not build (compare.sh builds otherwise)   KEEP_TMP=1   keep the temp dir (callgrind dumps)
#
# Prints one line per scenario: instructions/request for bare and tokengate, and their ratio.
# Exit status: 0 all good; 1 setup failed, a run served no requests, or a run's statuses were
# not the expected ones (all 2xx; all refused for tokengate's `unknown`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
LOADTEST_DIR=$PWD/loadtest
SCENARIOS=${SCENARIOS:-api-token,hs256,rs256,unknown}
CONNECTIONS=${CONNECTIONS:-8}
WARMUP=${WARMUP:-6s}
DURATION=${DURATION:-4s}
TOKENGATE=${TOKENGATE:-target/release/tokengate}
HELLO=${HELLO:-target/release/examples/hello}

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "instructions.sh: $*"; exit 1; }

# wrk comes with the setup below (compare.sh installs it when missing).
for tool in valgrind callgrind_control curl python3 openssl; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done

log "setup: compare.sh (one 1-second round, to make the data dir and tokens)"
setup_log=$(mktemp)
KEEP_TMP=1 ROUNDS=1 DURATION=1s WARMUP=0 SYSTEMS=bare,tokengate SCENARIOS=$SCENARIOS \
    TOKENGATE=$TOKENGATE HELLO=$HELLO "$LOADTEST_DIR/compare.sh" >"$setup_log" 2>&1 ||
    { cat "$setup_log" >&2; die "compare.sh setup failed"; }
WORK=$(sed -n 's/.* kept \(.*\)$/\1/p' "$setup_log" | tail -1)
rm -f "$setup_log"
[[ -d $WORK ]] || die "compare.sh did not keep its temp dir"
cleanup() {
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# Any admin key opens the kept data dir: the key is checked, not stored.
export TOKENGATE_ADMIN_KEY
TOKENGATE_ADMIN_KEY=$(openssl rand -hex 32)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wrk arguments for SCENARIO: the same requests compare.sh sends.
wrk_args() {
    case $1 in
        api-token) WRK_ARGS=(-H "API-Token: $(cat "$WORK/api-token.txt")") ;;
        hs256) WRK_ARGS=(-H "Authorization: Bearer $(head -1 "$WORK/hs256.txt")") ;;
        rs256) WRK_ARGS=(-H "Authorization: Bearer $(head -1 "$WORK/rs256.txt")") ;;
        rs256-miss) WRK_ARGS=(-s "$LOADTEST_DIR/rotating_tokens.lua"); export TG_TOKENS=$WORK/rs256-unique.txt ;;
        unknown) WRK_ARGS=(-s "$LOADTEST_DIR/rotating_tokens.lua"); export TG_TOKENS=$WORK/unknown.txt ;;
        *) die "unknown scenario $1 (api-token, hs256, rs256, rs256-miss, unknown)" ;;
    esac
}

# Prints SYSTEM's instructions per request in SCENARIO.
count() {
    local system=$1 scenario=$2 port admin_port pid out requests total dump
    port=$(free_port)
    dump=$WORK/callgrind.$system.$scenario
    local grind=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$dump")
    if [[ $system == bare ]]; then
        "${grind[@]}" "$HELLO" "127.0.0.1:$port" >"$dump.log" 2>&1 &
    else
        admin_port=$(free_port)
        rm -rf "$WORK/grind-data" && cp -a "$WORK/tokengate-data" "$WORK/grind-data"
        local extra=()
        [[ $scenario == rs256-miss ]] && extra=(--cache-capacity 0)
        "${grind[@]}" "$TOKENGATE" serve --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin_port" \
            --data-dir "$WORK/grind-data" "${extra[@]}" >"$dump.log" 2>&1 &
    fi
    pid=$!
    # count runs in a command substitution: this trap stops the server however it ends.
    trap "kill $pid 2>/dev/null || true" EXIT
    for _ in $(seq 120); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        kill -0 "$pid" 2>/dev/null || die "$system did not start under valgrind (see $dump.log)"
        sleep 0.5
    done
    wrk_args "$scenario"
    local url=http://127.0.0.1:$port/bench/hello
    wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "${WRK_ARGS[@]}" "$url" >/dev/null
    callgrind_control -i on "$pid" >/dev/null 2>&1
    out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "${WRK_ARGS[@]}" "$url")
    callgrind_control -i off "$pid" >/dev/null 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid" && wait "$pid" 2>/dev/null || true
    requests=$(awk '/requests in/{print $1}' <<<"$out")
    total=$(awk '/^totals:/{print $2; exit}' "$dump.1" 2>/dev/null || true)
    [[ ${requests:-0} -gt 0 && ${total:-0} -gt 0 ]] || die "$system/$scenario: no requests or no dump ($out)"
    # Count only what compare.sh would call a good run: every answer 2xx, or for tokengate's
    # `unknown` every answer refused (bare hyper answers everything with 200).
    local refused expected=0
    refused=$(awk '/Non-2xx or 3xx responses/{print $NF}' <<<"$out")
    [[ $system == tokengate && $scenario == unknown ]] && expected=$requests
    [[ ${refused:-0} -eq $expected ]] ||
        die "$system/$scenario: ${refused:-0} of $requests answers were not 2xx (expected $expected)"
    echo $((total / requests))
}

printf '%-12s %14s %14s %8s\n' scenario "bare instr/req" "tokengate" ratio
for scenario in ${SCENARIOS//,/ }; do
    bare=$(count bare "$scenario")
    tokengate=$(count tokengate "$scenario")
    printf '%-12s %14d %14d %8s\n' "$scenario" "$bare" "$tokengate" \
        "$(python3 -c "print(f'{$tokengate / $bare:.3f}')")"
done
