#!/usr/bin/env bash
# Measures tokengate's resident memory (VmRSS of the server process) in the two cases issue 13
# names, on loopback, and prints one line per measurement:
#
#   tokens       TOKENS distinct HS256 JWTs (distinct `jti`), each sent about once through
#                wrk + rotating_tokens.lua, so the verified-token cache holds them all; RSS
#                before and after, and the cache's entry count from /metrics.
#   connections  CONNECTIONS keep-alive connections, each after one API-Token request, left
#                idle (python3 asyncio); RSS before and with all of them open.
#
# Environment (defaults in brackets):
#   TOKENS [1000000]  CONNECTIONS [10000]  TOKENGATE [target/release/tokengate]
#   TOKEN_PASS [45s]  how long wrk sends the tokens (long enough for all of them)
#   SKIP_BUILD=1  do not run cargo build
# Not part of CI (it takes about a minute and 1-2 GB of memory for the token file and wrk).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TOKENS=${TOKENS:-1000000}
CONNECTIONS=${CONNECTIONS:-10000}
TOKENGATE=${TOKENGATE:-target/release/tokengate}
ADMIN_KEY=memory-test-admin-key-0123456789abcdef
SECRET=memory-test-hs256-secret-0123456789abcdef

[[ -n ${SKIP_BUILD:-} ]] || cargo build --release --bin tokengate
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
ulimit -n $((CONNECTIONS + 4096)) 2>/dev/null || { echo "cannot raise the open-file limit to $((CONNECTIONS + 4096))" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tokengate-memory.XXXXXX")
SERVER_PID=""
cleanup() {
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DATA_PORT=$(free_port)
ADMIN_PORT=$(free_port)
# Starts the server over $WORK/data (30 s idle timeout, so idle connections stay open while
# measured) and waits until its admin API answers.
start_server() {
    TOKENGATE_ADMIN_KEY=$ADMIN_KEY "$TOKENGATE" serve --listen "127.0.0.1:$DATA_PORT" \
        --admin-listen "127.0.0.1:$ADMIN_PORT" --data-dir "$WORK/data" \
        --header-read-timeout-s 30 >>"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "tokengate did not start:" >&2
    cat "$WORK/server.log" >&2
    exit 1
}
start_server

admin() { curl -sf -X "$1" -H "Authorization: Bearer $ADMIN_KEY" -H 'content-type: application/json' ${3:+-d "$3"} "http://127.0.0.1:$ADMIN_PORT$2"; }
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }
# KiB as "N MiB (M MB)": the issue's limits are in MB (10^6 bytes).
mib() { python3 -c "print('%.1f MiB (%.1f MB)' % ($1 / 1024, $1 * 1024 / 1e6))"; }

collection=$(admin POST /v1/collections '{"name":"mem","path":"mem","endpoints":[{"name":"ping","method":"GET","path":"/ping","response":{"status":200,"body":{"ok":true}}}]}' | field id)
client=$(admin POST /v1/clients '{"name":"Memory"}' | field id)
hs_token=$(admin POST "/v1/clients/$client/profiles" "{\"name\":\"hs\",\"collections\":[\"$collection\"],\"auth\":{\"type\":\"jwt\",\"alg\":\"HS256\",\"secret\":\"$SECRET\"}}" | field auth_token)
api_token=$(admin POST "/v1/clients/$client/profiles" "{\"name\":\"token\",\"collections\":[\"$collection\"],\"auth\":{\"type\":\"token\"}}" | field auth_token)
URL="http://127.0.0.1:$DATA_PORT/mem/ping"

# --- tokens -------------------------------------------------------------------------------
python3 - "$hs_token" "$SECRET" "$TOKENS" >"$WORK/tokens.txt" <<'PY'
import base64, hashlib, hmac, json, sys, time
sub, secret, count = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
head = b64(b'{"alg":"HS256","typ":"JWT"}')
exp = int(time.time()) + 7200
out = sys.stdout.buffer
for i in range(count):
    body = b64(json.dumps({"sub": sub, "name": "Memory", "exp": exp, "jti": str(i)}, separators=(",", ":")).encode())
    signing = head + b"." + body
    out.write(signing + b"." + b64(hmac.new(secret, signing, hashlib.sha256).digest()) + b"\n")
PY
before=$(rss_kib)
# One wrk run long enough to go through the whole file (wrk starts at the file's beginning on
# every run, so one long run, not several short ones).
TG_TOKENS="$WORK/tokens.txt" timeout 600 wrk -t1 -c32 -d"${TOKEN_PASS:-45s}" -s loadtest/rotating_tokens.lua "$URL" >"$WORK/wrk.out" 2>&1 || true
entries=$(curl -sf -H "Authorization: Bearer $ADMIN_KEY" "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^tokengate_token_cache_entries / {print $2}')
sleep 2
after=$(rss_kib)
echo "tokens       $TOKENS distinct HS256 JWTs cached (cache entries: $entries): RSS $(mib "$before") before, $(mib "$after") after ($(python3 -c "print('%.0f' % (($after - $before) * 1024 / $TOKENS))") bytes per token)"

# --- connections ----------------------------------------------------------------------------
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
start_server
curl -sf -H "API-Token: $api_token" "$URL" >/dev/null
before=$(rss_kib)
result=$(python3 - "$DATA_PORT" "$api_token" "$CONNECTIONS" "$SERVER_PID" <<'PY'
import asyncio, sys
port, token, count, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
request = f"GET /mem/ping HTTP/1.1\r\nHost: m\r\nAPI-Token: {token}\r\n\r\n".encode()

async def one(held):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
    await reader.readexactly(length)
    held.append(writer)

async def main():
    held = []
    for start in range(0, count, 500):
        await asyncio.gather(*(one(held) for _ in range(min(500, count - start))))
    await asyncio.sleep(2)
    rss = [l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1]
    print(f"{len(held)} {rss}")

asyncio.run(main())
PY
)
read -r held with <<<"$result"
echo "connections  $held idle keep-alive connections: RSS $(mib "$before") before, $(mib "$with") with them open ($(python3 -c "print('%.0f' % (($with - $before) * 1024 / max($held, 1)))") bytes per connection)"
