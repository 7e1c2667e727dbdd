#!/usr/bin/env bash
# Soak test: SOAK_MINUTES (10) of a paced mix at about half of saturation against the release
# binary, with an admin write every second; reports unexpected statuses, RSS over time and
# open file descriptors at the end. Loopback only; not part of CI.
#
# The mix (loadtest/soak.lua): 30 % API-Token, 20 % HS256 (one repeated JWT), 20 % RS256 (one
# repeated JWT), 10 % RS256 unique (UNIQUE_COUNT JWTs rotated: cache misses while the cache is
# cold, then hits), 20 % unknown (JWTs naming no profile, random auth tokens, garbage).
# Known credentials must get 200, unknown ones 401; anything else is unexpected.
# The admin writer alternately creates a client and deletes it, and renames a spare profile.
#
# Environment (defaults in brackets):
#   SOAK_MINUTES [10]  CONNECTIONS [128]  UNIQUE_COUNT [2000]  LOAD_SHARE [0.5]
#   TOKENGATE [target/release/tokengate]  SKIP_BUILD=1  KEEP_TMP=1
#
# Exit status: 0 clean; 1 setup failed; 3 unexpected statuses, socket errors or failed writes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SOAK_MINUTES=${SOAK_MINUTES:-10}
CONNECTIONS=${CONNECTIONS:-128}
UNIQUE_COUNT=${UNIQUE_COUNT:-2000}
LOAD_SHARE=${LOAD_SHARE:-0.5}
TOKENGATE=${TOKENGATE:-target/release/tokengate}
KEYS=tests/data/jwt-interop

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } || die "wrk is needed"
command -v curl >/dev/null || die "curl is needed"
[[ ${SKIP_BUILD:-0} == 1 ]] || cargo build --release --quiet

WORK=$(mktemp -d /tmp/tokengate-soak.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ ${KEEP_TMP:-0} == 1 ]] && log "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DATA_PORT=$(free_port); ADMIN_PORT=$(free_port)
ADMIN_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
ADMIN=http://127.0.0.1:$ADMIN_PORT; DATA=http://127.0.0.1:$DATA_PORT

TOKENGATE_ADMIN_KEY=$ADMIN_KEY TOKENGATE_LOG=warn "$TOKENGATE" serve \
    --listen 127.0.0.1:$DATA_PORT --admin-listen 127.0.0.1:$ADMIN_PORT \
    --data-dir "$WORK/data" 2>"$WORK/server.log" &
SERVER=$!; PIDS+=("$SERVER")
for _ in $(seq 100); do curl -fs "$ADMIN/healthz" >/dev/null && break; sleep 0.1; done
curl -fs "$ADMIN/healthz" >/dev/null || die "the server did not start: $(cat "$WORK/server.log")"

api() { curl -fsS -H "Authorization: Bearer $ADMIN_KEY" -H 'content-type: application/json' "$@"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
json_string() { python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"; }

COL=$(api "$ADMIN/v1/collections" -d '{"name":"Soak","path":"soak","endpoints":[
    {"name":"hello","method":"GET","path":"/hello","response":{"status":200,"body":{"hello":"soak"}}}]}' | field id)
CLIENT=$(api "$ADMIN/v1/clients" -d '{"name":"Soak client"}' | field id)
profile() { api "$ADMIN/v1/clients/$CLIENT/profiles" -d "{\"name\":\"$1\",\"collections\":[\"$COL\"],\"auth\":$2}"; }
SECRET=$(python3 -c 'import secrets,base64; print(base64.b64encode(secrets.token_bytes(32)).decode())')
TOKEN=$(profile raw '{"type":"token"}' | field auth_token)
HS_TOKEN=$(profile hs256 "{\"type\":\"jwt\",\"alg\":\"HS256\",\"secret\":\"$SECRET\"}" | field auth_token)
RS_TOKEN=$(profile rs256 "{\"type\":\"jwt\",\"alg\":\"RS256\",\"public_key\":$(json_string $KEYS/rsa2048.spki.pem)}" | field auth_token)
SPARE=$(profile spare '{"type":"token"}' | field id)

EXP=$(( SOAK_MINUTES + 30 ))m
T=$WORK/tokens; mkdir -p "$T"
echo "API-Token: $TOKEN" >"$T/token.txt"
echo "Authorization: Bearer $("$TOKENGATE" jwt sign --sub "$HS_TOKEN" --name soak --secret "$SECRET" --exp "$EXP")" >"$T/hs256.txt"
echo "Authorization: Bearer $("$TOKENGATE" jwt sign --sub "$RS_TOKEN" --name soak --key $KEYS/rsa2048.key --exp "$EXP")" >"$T/rs256.txt"
log "minting $UNIQUE_COUNT unique RS256 JWTs"
TOKENGATE=$TOKENGATE loadtest/mint_tokens.sh --out "$T/unique.jwt" --sub "$RS_TOKEN" --name soak \
    --key $KEYS/rsa2048.key --count "$UNIQUE_COUNT" --exp "$EXP" 2>/dev/null
sed 's/^/Authorization: Bearer /' "$T/unique.jwt" >"$T/rs256-unique.txt"
TOKENGATE=$TOKENGATE loadtest/mint_tokens.sh --out "$T/unknown.jwt" --random-sub --name soak \
    --secret "$SECRET" --count 100 --exp "$EXP" 2>/dev/null
{
    sed 's/^/Authorization: Bearer /' "$T/unknown.jwt"
    for _ in $(seq 100); do echo "API-Token: $(python3 -c 'import secrets; print(secrets.token_hex(32))')"; done
    echo "Authorization: Bearer not-a-jwt"
    echo "API-Token: short"
} >"$T/unknown.txt"

# Calibrate: the same mix unpaced for 5 s; then pace each connection to LOAD_SHARE of it.
SATURATION=$(TG_SOAK_DIR=$T TG_DELAY_MS=0 wrk -t1 -c32 -d5s -s loadtest/soak.lua "$DATA/soak/hello" \
    | sed -n 's/^SOAK_RESULT //p' | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["rps"]))')
# Each connection's cycle is the delay plus about 1 ms of latency at this load.
DELAY_MS=$(python3 -c "print(max(1, round($CONNECTIONS * 1000 / ($SATURATION * $LOAD_SHARE)) - 1))")
log "saturation ≈ $SATURATION req/s; pacing $CONNECTIONS connections at one request per ${DELAY_MS} ms"

# The admin writer: one change a second, counting failures.
(
    failures=0; n=0
    while :; do
        n=$((n + 1))
        if (( n % 2 )); then
            id=$(api "$ADMIN/v1/clients" -d "{\"name\":\"churn $n\"}" 2>/dev/null | field id 2>/dev/null) || { failures=$((failures + 1)); id=""; }
            echo "$id" >"$WORK/churn.id"
        else
            id=$(cat "$WORK/churn.id" 2>/dev/null || true)
            [[ -n $id ]] && { api -X DELETE "$ADMIN/v1/clients/$id" >/dev/null 2>&1 || failures=$((failures + 1)); }
        fi
        api -X PATCH "$ADMIN/v1/profiles/$SPARE" -d "{\"name\":\"spare $n\"}" >/dev/null 2>&1 || failures=$((failures + 1))
        echo "$n $failures" >"$WORK/writes"
        sleep 1
    done
) &
PIDS+=("$!")

# The sampler: every 10 s, elapsed seconds, RSS (KiB), open fds, CPU ticks of the server.
(
    start=$(date +%s)
    while kill -0 "$SERVER" 2>/dev/null; do
        rss=$(awk '/^VmRSS/ {print $2}' /proc/$SERVER/status)
        fds=$(ls /proc/$SERVER/fd | wc -l)
        ticks=$(awk '{print $14 + $15}' /proc/$SERVER/stat)
        echo "$(( $(date +%s) - start )) $rss $fds $ticks" >>"$WORK/samples"
        sleep 10
    done
) &
PIDS+=("$!")

log "soaking for $SOAK_MINUTES min"
TG_SOAK_DIR=$T TG_DELAY_MS=$DELAY_MS wrk -t1 -c"$CONNECTIONS" -d"${SOAK_MINUTES}m" --timeout 5s \
    -s loadtest/soak.lua "$DATA/soak/hello" >"$WORK/wrk.out"
sleep 1
FDS_END=$(ls /proc/$SERVER/fd | wc -l)
OPEN_END=$(curl -fsS -H "Authorization: Bearer $ADMIN_KEY" "$ADMIN/metrics" | awk '/^tokengate_open_connections / {print $2}')

python3 - "$WORK" "$SOAK_MINUTES" "$CONNECTIONS" "$FDS_END" "$OPEN_END" <<'PY'
import json, sys
work, minutes, connections, fds_end, open_end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
result = json.loads(open(f"{work}/wrk.out").read().split("SOAK_RESULT ", 1)[1])
samples = [tuple(int(x) for x in line.split()) for line in open(f"{work}/samples")]
writes, write_failures = (int(x) for x in open(f"{work}/writes").read().split())
sent_unknown = result.get("sent_unknown", 0)
sent_known = sum(v for k, v in result.items() if k.startswith("sent_") and k != "sent_unknown")
statuses = {k[7:]: v for k, v in result.items() if k.startswith("status_")}
other = {s: n for s, n in statuses.items() if s not in ("200", "401")}
# wrk stops with up to one request in flight per connection: sent minus answered is at most that.
mismatch_401 = sent_unknown - statuses.get("401", 0)
mismatch_200 = sent_known - statuses.get("200", 0)
unexpected = sum(other.values()) + max(0, -mismatch_401) + max(0, -mismatch_200)
if not (0 <= mismatch_401 <= connections and 0 <= mismatch_200 <= connections):
    unexpected += abs(mismatch_401) + abs(mismatch_200)
def at(minute):
    best = min(samples, key=lambda s: abs(s[0] - minute * 60))
    return best
print(f"requests {result['requests']}  rate {result['rps']:.0f} req/s  p50 {result['p50_us']} us  p99 {result['p99_us']} us")
print(f"sent: known {sent_known}, unknown {sent_unknown}; statuses {statuses}")
print(f"unexpected statuses: {unexpected}   socket errors: {result['socket_errors']}")
print(f"admin writes: {writes} seconds, {write_failures} failed")
for minute in sorted({1, 5, minutes} & set(range(1, minutes + 1))) or [minutes]:
    s = at(minute)
    print(f"RSS at {s[0]:>4} s: {s[1] / 1024:.1f} MiB   open fds {s[2]}")
first, last = samples[0], samples[-1]
cpu_s = (last[3] - first[3]) / 100
print(f"server CPU: {cpu_s:.0f} s over {last[0] - first[0]} s ({cpu_s / max(1, result['requests']) * 1e6:.1f} us/request)")
print(f"open fds at the end: {fds_end}   tokengate_open_connections at the end: {open_end}")
sys.exit(3 if unexpected or result["socket_errors"] or write_failures else 0)
PY
