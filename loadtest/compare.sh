#!/usr/bin/env bash
# Compares tokengate's throughput with two references, in ONE run, on loopback:
#
#   bare       target/release/examples/hello: bare hyper, no auth at all (the ceiling)
#   haproxy    HAProxy (Debian's 2.6) with a generated config doing the same checks
#              (jwt_header_query + jwt_verify for JWTs, sha2(256) + map for API-Token)
#   tokengate  target/release/tokengate serve, set up through its admin API
#
# Scenarios (SCENARIOS filters them):
#   noauth      no credential; HAProxy answers with `http-request return`
#               (tokengate has no open endpoint: n/a)
#   api-token   `API-Token: <auth token>`
#   hs256       one HS256 JWT, repeated
#   rs256       one RS256 JWT, repeated (tokengate: a verified-token cache hit)
#   rs256-miss  TOKEN_COUNT unique RS256 JWTs, rotating: every request is an RSA
#               verify. tokengate runs this one on a second instance started with
#               `--cache-capacity 0` (a copy of the same data dir), because a
#               cache would turn all but the first pass into hits.
#   unknown     UNKNOWN_COUNT RS256 JWTs whose `sub` matches no profile, signed by
#               an unrelated key; expected 401 (tokengate) / 403 (HAProxy);
#               compare throughput only (HAProxy still pays an RSA verify).
#   tls         `API-Token` over HTTPS on keep-alive connections; HAProxy and a
#               tokengate instance with --tls-cert share one certificate
#               (tests/data/tls, ECDSA P-256); no bare run
#   tls-handshake  the same with `Connection: close`: a full TLS handshake (wrk
#               does not resume sessions) for every request
#
# Besides req/s and latency, every run reports the server's CPU per request:
# the utime+stime of the server process over the run (/proc/PID/stat) divided
# by the requests wrk completed. wrk competes with the server for the 2 cores,
# so req/s depends on wrk's share; CPU per request much less so. Each run also records the
# host's steal time (/proc/stat): a run where the hypervisor took CPU from this VM is shown
# as such (the steal% column) rather than passed off as a slow server.
#
# The systems alternate within every round, in an order that turns by one each round
# (A B C, B C A, C A B, ...), so drift on this noisy machine hits all of them alike and no
# system always runs first or right after the same other one; the table shows medians over
# ROUNDS.
# Load: wrk -t1 -c$CONNECTIONS -d$DURATION --latency (wrk shares the 2 cores), invoked the
# same way for every system: fixed headers with -H and no Lua script (a script costs wrk CPU
# that the server then lacks); rotating tokens (rs256-miss, unknown) use a Lua script, for the
# bare baseline too.
#
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [5s]  CONNECTIONS [32]
#   WARMUP [2s]           one uncounted wrk run of each system and scenario before round 1
#                         (0: none), so no system's first counted run pays its start-up
#   SYSTEMS [bare,haproxy,tokengate]
#   SCENARIOS [noauth,api-token,hs256,rs256,rs256-miss,unknown]
#   TOKEN_COUNT [2000]  UNKNOWN_COUNT [500]  TOKEN_EXP [2h]
#   HAPROXY_THREADS [2]   nbthread in the HAProxy config
#   TOKENGATE [target/release/tokengate]  HELLO [target/release/examples/hello]
#   SKIP_BUILD=1          do not run cargo build
#   OUT=FILE              also write the full results (every run) as JSON there
#   KEEP_TMP=1            keep the temp dir (keys, tokens, configs, logs)
#   TOKENGATE_LOG [unset] tokengate's log filter; unset measures the default (info)
#
# Exit status: 0 all good; 1 setup failed (a server did not start, ...);
# 3 some run had unexpected statuses or socket errors (flagged with !!!).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
LOADTEST_DIR=$PWD/loadtest

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-32}
SYSTEMS=${SYSTEMS:-bare,haproxy,tokengate}
SCENARIOS=${SCENARIOS:-noauth,api-token,hs256,rs256,rs256-miss,unknown,tls,tls-handshake}
TOKEN_COUNT=${TOKEN_COUNT:-2000}
UNKNOWN_COUNT=${UNKNOWN_COUNT:-500}
TOKEN_EXP=${TOKEN_EXP:-2h}
HAPROXY_THREADS=${HAPROXY_THREADS:-2}
TOKENGATE=${TOKENGATE:-target/release/tokengate}
HELLO=${HELLO:-target/release/examples/hello}

ALL_SYSTEMS=(bare haproxy tokengate)
ALL_SCENARIOS=(noauth api-token hs256 rs256 rs256-miss unknown tls tls-handshake)
TLS_DIR=$LOADTEST_DIR/../tests/data/tls   # bench.crt/bench.key (127.0.0.1, localhost), bench-ca.pem
ENDPOINT_PATH=/bench/hello      # tokengate: collection `bench`, endpoint `/hello`
STARTUP_TIMEOUT_S=15

WORK=""                 # temp dir with keys, tokens, configs, logs, results
CHILD_PIDS=()           # every server this script started
WRK_PID=""              # the wrk run in progress, if any
RUN_PROBLEMS=0          # runs or preflight checks that went wrong
declare -A URL          # URL[system] / URL[system:scenario] where a scenario needs its own
declare -A SERVER_PID   # SERVER_PID[name] for liveness checks
declare -A SERVES       # SERVES[system] / SERVES[system:scenario]: the server whose CPU a run costs

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
loud() { printf '\n!!! %s\n\n' "$*" >&2; }
has() { [[ ",$1," == *",$2,"* ]]; }   # has "a,b,c" b

# --- setup ------------------------------------------------------------------

check_settings() {
    local item
    for item in ${SYSTEMS//,/ }; do
        [[ " ${ALL_SYSTEMS[*]} " == *" $item "* ]] || die "unknown system '$item' in SYSTEMS (known: ${ALL_SYSTEMS[*]})"
    done
    for item in ${SCENARIOS//,/ }; do
        [[ " ${ALL_SCENARIOS[*]} " == *" $item "* ]] || die "unknown scenario '$item' in SCENARIOS (known: ${ALL_SCENARIOS[*]})"
    done
    [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
    [[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer"
    duration_seconds >/dev/null || die "DURATION must look like 5s, 2m or 5"
}

duration_seconds() {
    case $DURATION in
        *[0-9]s) echo "${DURATION%s}" ;;
        *[0-9]m) echo $((${DURATION%m} * 60)) ;;
        *[0-9]) echo "$DURATION" ;;
        *) return 1 ;;
    esac
}

install_missing_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    has "$SYSTEMS" haproxy && ! command -v haproxy >/dev/null && missing+=(haproxy)
    if ((${#missing[@]})); then
        log "installing ${missing[*]} with apt-get"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    local tool
    for tool in wrk curl python3 openssl; do
        command -v "$tool" >/dev/null || die "$tool is required"
    done
}

build_binaries() {
    if [[ ${SKIP_BUILD:-0} == 1 ]]; then
        log "SKIP_BUILD=1: using the binaries as they are"
        return
    fi
    local targets=(--example hello)
    has "$SYSTEMS" tokengate && targets=(--bin tokengate "${targets[@]}")
    log "cargo build --release ${targets[*]}"
    cargo build --release "${targets[@]}" >&2
}

# Prints N free loopback TCP ports (held open together so they differ).
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
PY
}

# Starts a server in the background: start_server NAME LOGFILE CMD...
start_server() {
    local name=$1 logfile=$2
    shift 2
    "$@" >"$logfile" 2>&1 &
    CHILD_PIDS+=($!)
    SERVER_PID[$name]=$!
}

# Polls until URL answers with the expected status: wait_for_status NAME URL STATUS [curl args...]
wait_for_status() {
    local name=$1 url=$2 want=$3 got=""
    shift 3
    local deadline=$((SECONDS + STARTUP_TIMEOUT_S))
    while ((SECONDS < deadline)); do
        if ! kill -0 "${SERVER_PID[$name]}" 2>/dev/null; then
            tail -20 "$WORK/$name.log" >&2 || true
            die "$name exited before it answered on $url (log above, $WORK/$name.log)"
        fi
        got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$url" || true)
        [[ $got == "$want" ]] && return 0
        sleep 0.1
    done
    tail -20 "$WORK/$name.log" >&2 || true
    die "$name did not answer $want on $url within ${STARTUP_TIMEOUT_S}s (last status: ${got:-none})"
}

# Stops one server started by start_server and waits for it: stop_server NAME
stop_server() {
    local pid=${SERVER_PID[$1]} deadline=$((SECONDS + 5))
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_children() {
    local pid deadline
    ((${#CHILD_PIDS[@]})) || return 0
    for pid in "${CHILD_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    deadline=$((SECONDS + 5))
    for pid in "${CHILD_PIDS[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    CHILD_PIDS=()
}

cleanup() {
    [[ -n $WRK_PID ]] && kill -TERM "$WRK_PID" 2>/dev/null
    stop_children
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    fi
}

make_keys() {
    log "keys: RSA-2048 (PEM + SPKI public key), an unrelated RSA key, an HS256 secret"
    openssl genrsa -out "$WORK/rs256.key" 2048 2>/dev/null
    openssl rsa -in "$WORK/rs256.key" -pubout -out "$WORK/rs256.pub.pem" 2>/dev/null
    openssl genrsa -out "$WORK/unrelated.key" 2048 2>/dev/null
    HS256_SECRET=$(openssl rand -base64 32)   # used as its 44 characters (SPEC §1)
    # Without tokengate there are no profiles: stand-in auth tokens of the same shape.
    API_AUTH_TOKEN=$(openssl rand -hex 32)
    HS256_AUTH_TOKEN=$(openssl rand -hex 32)
    RS256_AUTH_TOKEN=$(openssl rand -hex 32)
}

# --- tokengate --------------------------------------------------------------

# admin_call METHOD PATH [JSON]: prints the response body; dies unless 2xx.
admin_call() {
    local method=$1 path=$2 body=${3:-} response status
    response=$(curl -sS --max-time 10 -X "$method" "$TG_ADMIN_URL$path" \
        -H "Authorization: Bearer $TOKENGATE_ADMIN_KEY" -H 'Content-Type: application/json' \
        ${body:+--data-binary "$body"} -w '\n%{http_code}') || die "admin $method $path: no response"
    status=${response##*$'\n'}
    body=${response%$'\n'*}
    [[ $status == 2?? ]] || die "admin $method $path: HTTP $status: $body"
    printf '%s\n' "$body"
}

json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# Prints a profile-create body: profile_body NAME COLLECTION_ID AUTH_KIND
profile_body() {
    python3 - "$@" "$HS256_SECRET" "$WORK/rs256.pub.pem" <<'PY'
import json, sys
name, collection, kind, secret, public_key_file = sys.argv[1:6]
auth = {
    "token": {"type": "token"},
    "hs256": {"type": "jwt", "alg": "HS256", "secret": secret},
    "rs256": {"type": "jwt", "alg": "RS256", "public_key": open(public_key_file).read()},
}[kind]
print(json.dumps({"name": name, "collections": [collection], "auth": auth}))
PY
}

start_tokengate() {
    local name=$1 data_dir=$2 port=$3 admin_port=$4
    shift 4
    start_server "$name" "$WORK/$name.log" "$TOKENGATE" serve --listen "127.0.0.1:$port" \
        --admin-listen "127.0.0.1:$admin_port" --data-dir "$data_dir" "$@"
    wait_for_status "$name" "http://127.0.0.1:$admin_port/healthz" 200 -H "Authorization: Bearer $TOKENGATE_ADMIN_KEY"
}

# Creates the collection, client and three profiles; sets the *_AUTH_TOKEN variables.
configure_tokengate() {
    local collection client_id
    collection=$(admin_call POST /v1/collections \
        '{"name":"bench","path":"bench","endpoints":[{"name":"hello","method":"GET","path":"/hello","response":{"status":200,"body":{"ok":true}}}]}' |
        json_field id)
    client_id=$(admin_call POST /v1/clients '{"name":"loadtest"}' | json_field id)
    API_AUTH_TOKEN=$(admin_call POST "/v1/clients/$client_id/profiles" "$(profile_body api-token "$collection" token)" | json_field auth_token)
    HS256_AUTH_TOKEN=$(admin_call POST "/v1/clients/$client_id/profiles" "$(profile_body hs256 "$collection" hs256)" | json_field auth_token)
    RS256_AUTH_TOKEN=$(admin_call POST "/v1/clients/$client_id/profiles" "$(profile_body rs256 "$collection" rs256)" | json_field auth_token)
}

# Two instances on copies of one store: `tokengate` (cache on) and
# `tokengate-nocache` (--cache-capacity 0, used for rs256-miss only).
setup_tokengate() {
    local port admin_port nocache_port nocache_admin_port
    [[ -x $TOKENGATE ]] || die "$TOKENGATE is missing (build it, or leave tokengate out of SYSTEMS)"
    export TOKENGATE_ADMIN_KEY
    TOKENGATE_ADMIN_KEY=$(openssl rand -hex 32)
    read -r port admin_port nocache_port nocache_admin_port tls_port tls_admin_port <<<"$(free_ports 6)"
    TG_ADMIN_URL="http://127.0.0.1:$admin_port"

    log "tokengate: configuring through the admin API"
    start_tokengate tokengate "$WORK/tokengate-data" "$port" "$admin_port"
    configure_tokengate
    # For instructions.sh, which reuses a kept temp dir (a test profile's token, like hs256.txt).
    printf '%s\n' "$API_AUTH_TOKEN" >"$WORK/api-token.txt"
    # Copy the store while no server holds it, then run both instances.
    stop_server tokengate
    cp -a "$WORK/tokengate-data" "$WORK/tokengate-nocache-data"
    cp -a "$WORK/tokengate-data" "$WORK/tokengate-tls-data"
    start_tokengate tokengate "$WORK/tokengate-data" "$port" "$admin_port"
    start_tokengate tokengate-nocache "$WORK/tokengate-nocache-data" "$nocache_port" "$nocache_admin_port" --cache-capacity 0
    if has "$SCENARIOS" tls || has "$SCENARIOS" tls-handshake; then
        start_tokengate tokengate-tls "$WORK/tokengate-tls-data" "$tls_port" "$tls_admin_port" \
            --tls-cert "$TLS_DIR/bench.crt" --tls-key "$TLS_DIR/bench.key"
        URL[tokengate:tls]="https://127.0.0.1:$tls_port$ENDPOINT_PATH"
        URL[tokengate:tls-handshake]="https://127.0.0.1:$tls_port$ENDPOINT_PATH"
        SERVES[tokengate:tls]=tokengate-tls
        SERVES[tokengate:tls-handshake]=tokengate-tls
    fi
    URL[tokengate]="http://127.0.0.1:$port$ENDPOINT_PATH"
    URL[tokengate:rs256-miss]="http://127.0.0.1:$nocache_port$ENDPOINT_PATH"
    SERVES[tokengate]=tokengate
    SERVES[tokengate:rs256-miss]=tokengate-nocache
    log "tokengate: $TOKENGATE on 127.0.0.1:$port; --cache-capacity 0 copy on 127.0.0.1:$nocache_port (rs256-miss)"
}

# --- tokens -----------------------------------------------------------------

mint() { TOKENGATE=$TOKENGATE "$LOADTEST_DIR/mint_tokens.sh" --exp "$TOKEN_EXP" --name loadtest "$@" 2>>"$WORK/mint.log"; }

mint_all_tokens() {
    log "minting tokens (mint_tokens.sh; signer in $WORK/mint.log)"
    mint --out "$WORK/hs256.txt" --count 1 --sub "$HS256_AUTH_TOKEN" --alg HS256 --secret "$HS256_SECRET"
    if has "$SCENARIOS" rs256-miss; then
        mint --out "$WORK/rs256-unique.txt" --count "$TOKEN_COUNT" --sub "$RS256_AUTH_TOKEN" --alg RS256 --key "$WORK/rs256.key"
        head -1 "$WORK/rs256-unique.txt" >"$WORK/rs256.txt"
    else
        mint --out "$WORK/rs256.txt" --count 1 --sub "$RS256_AUTH_TOKEN" --alg RS256 --key "$WORK/rs256.key"
    fi
    if has "$SCENARIOS" unknown; then
        mint --out "$WORK/unknown.txt" --count "$UNKNOWN_COUNT" --random-sub --alg RS256 --key "$WORK/unrelated.key"
    fi
    TOKEN_SIGNER=$(grep -q FALLBACK "$WORK/mint.log" && echo "fallback (python3 + openssl)" || echo "tokengate jwt sign")
    log "token signer: $TOKEN_SIGNER"
}

# --- bare hyper and HAProxy -------------------------------------------------

setup_bare() {
    local port
    [[ -x $HELLO ]] || die "$HELLO is missing (cargo build --release --example hello)"
    port=$(free_ports 1)
    start_server bare "$WORK/bare.log" "$HELLO" "127.0.0.1:$port"
    wait_for_status bare "http://127.0.0.1:$port/" 200
    URL[bare]="http://127.0.0.1:$port$ENDPOINT_PATH"
    SERVES[bare]=bare
    log "bare: $HELLO on 127.0.0.1:$port"
}

# One frontend per check; every one answers like tokengate's response endpoint.
write_haproxy_config() {
    local ok="http-request return status 200 content-type application/json string '{\"ok\":true}'"
    local digest
    digest=$(printf '%s' "$API_AUTH_TOKEN" | sha256sum | cut -d' ' -f1 | tr a-f A-F)
    printf '%s 1\n' "$digest" >"$WORK/api-tokens.map"
    cat <<EOF
# Generated by loadtest/compare.sh
global
    nbthread $HAPROXY_THREADS
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s

frontend noauth
    bind 127.0.0.1:$1
    $ok

# API-Token: SHA-256 of the header looked up in a map, as tokengate matches digests.
frontend api_token
    bind 127.0.0.1:$2
    http-request deny unless { req.hdr(api-token),sha2(256),hex,map($WORK/api-tokens.map) -m found }
    $ok

frontend hs256
    bind 127.0.0.1:$3
    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
    http-request deny unless { var(txn.alg) -m str HS256 }
    http-request deny unless { var(txn.bearer),jwt_verify(txn.alg,"$HS256_SECRET") -m int 1 }
    $ok

# RS256: jwt_verify takes a PEM public key (SPKI) or certificate FILE, loaded at start.
frontend rs256
    bind 127.0.0.1:$4
    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
    http-request deny unless { var(txn.alg) -m str RS256 }
    http-request deny unless { var(txn.bearer),jwt_verify(txn.alg,"$WORK/rs256.pub.pem") -m int 1 }
    $ok

# API-Token over TLS: the same check behind the certificate tokengate-tls uses.
frontend api_token_tls
    bind 127.0.0.1:$5 ssl crt $WORK/haproxy-tls.pem alpn http/1.1 ssl-min-ver TLSv1.2
    http-request deny unless { req.hdr(api-token),sha2(256),hex,map($WORK/api-tokens.map) -m found }
    $ok
EOF
}

setup_haproxy() {
    local noauth_port api_port hs_port rs_port tls_port
    read -r noauth_port api_port hs_port rs_port tls_port <<<"$(free_ports 5)"
    cat "$TLS_DIR/bench.crt" "$TLS_DIR/bench.key" >"$WORK/haproxy-tls.pem"
    write_haproxy_config "$noauth_port" "$api_port" "$hs_port" "$rs_port" "$tls_port" >"$WORK/haproxy.cfg"
    haproxy -c -q -f "$WORK/haproxy.cfg" || die "haproxy rejected $WORK/haproxy.cfg"
    start_server haproxy "$WORK/haproxy.log" haproxy -db -f "$WORK/haproxy.cfg"
    wait_for_status haproxy "http://127.0.0.1:$noauth_port/" 200
    URL[haproxy:noauth]="http://127.0.0.1:$noauth_port$ENDPOINT_PATH"
    URL[haproxy:api-token]="http://127.0.0.1:$api_port$ENDPOINT_PATH"
    URL[haproxy:hs256]="http://127.0.0.1:$hs_port$ENDPOINT_PATH"
    URL[haproxy]="http://127.0.0.1:$rs_port$ENDPOINT_PATH"   # rs256, rs256-miss, unknown
    URL[haproxy:tls]="https://127.0.0.1:$tls_port$ENDPOINT_PATH"
    URL[haproxy:tls-handshake]="https://127.0.0.1:$tls_port$ENDPOINT_PATH"
    SERVES[haproxy]=haproxy
    HAPROXY_VERSION=$(haproxy -v | awk 'NR == 1 {print $3}')
    log "haproxy: $HAPROXY_VERSION, nbthread $HAPROXY_THREADS, frontends on 127.0.0.1:$noauth_port..$rs_port"
}

# --- scenarios --------------------------------------------------------------

url_for() { echo "${URL[$1:$2]:-${URL[$1]}}"; }

# applies SYSTEM SCENARIO: tokengate has no open endpoint; bare hyper has no TLS.
applies() { [[ ! ($1 == tokengate && $2 == noauth) && ! ($1 == bare && $2 == tls*) ]]; }

# The server's utime+stime in clock ticks: cpu_ticks SERVER_NAME
cpu_ticks() { awk '{print $14 + $15}' "/proc/${SERVER_PID[$1]}/stat" 2>/dev/null || echo 0; }

# The host's stolen and total CPU ticks (/proc/stat, all CPUs): "STEAL TOTAL". Time the
# hypervisor gave to other guests inflates a run's latency and cuts its req/s; the report
# shows it per run so a disturbed run can be told from a slow server.
host_ticks() { awk '/^cpu / {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit}' /proc/stat; }

# The status every response must have: expected_status SYSTEM SCENARIO
expected_status() {
    case $1:$2 in
        tokengate:unknown) echo 401 ;;
        haproxy:unknown) echo 403 ;;
        *) echo 200 ;;
    esac
}

# Sets WRK_ARGS and WRK_ENV (the script and its inputs) for a scenario. The same for every
# system, bare hyper included: a fixed header goes in with -H and wrk runs without a script
# (wrk_result.py reads its text output); only rotating tokens need a Lua script.
wrk_inputs_for() {
    case $1 in
        noauth) WRK_ENV=() WRK_ARGS=() ;;
        api-token | tls) WRK_ENV=() WRK_ARGS=(-H "API-Token: $API_AUTH_TOKEN") ;;
        tls-handshake) WRK_ENV=() WRK_ARGS=(-H "Connection: close" -H "API-Token: $API_AUTH_TOKEN") ;;
        hs256) WRK_ENV=() WRK_ARGS=(-H "Authorization: Bearer $(<"$WORK/hs256.txt")") ;;
        rs256) WRK_ENV=() WRK_ARGS=(-H "Authorization: Bearer $(<"$WORK/rs256.txt")") ;;
        rs256-miss) WRK_ENV=("TG_TOKENS=$WORK/rs256-unique.txt") WRK_ARGS=(-s "$LOADTEST_DIR/rotating_tokens.lua") ;;
        unknown) WRK_ENV=("TG_TOKENS=$WORK/unknown.txt") WRK_ARGS=(-s "$LOADTEST_DIR/rotating_tokens.lua") ;;
    esac
}

# curl with the scenario's first and last credential; the status must be the expected one.
preflight() {
    local system=$1 scenario=$2 want got url header tokens token
    want=$(expected_status "$system" "$scenario")
    url=$(url_for "$system" "$scenario")
    case $scenario in
        noauth) tokens=("") ;;
        api-token | tls | tls-handshake) tokens=("$API_AUTH_TOKEN") ;;
        hs256) tokens=("$(<"$WORK/hs256.txt")") ;;
        rs256) tokens=("$(<"$WORK/rs256.txt")") ;;
        rs256-miss) tokens=("$(head -1 "$WORK/rs256-unique.txt")" "$(tail -1 "$WORK/rs256-unique.txt")") ;;
        unknown) tokens=("$(head -1 "$WORK/unknown.txt")" "$(tail -1 "$WORK/unknown.txt")") ;;
    esac
    for token in "${tokens[@]}"; do
        case $scenario in
            noauth) header=() ;;
            api-token | tls | tls-handshake) header=(-H "API-Token: $token") ;;
            *) header=(-H "Authorization: Bearer $token") ;;
        esac
        [[ $url == https://* ]] && header+=(--cacert "$TLS_DIR/bench-ca.pem")
        got=$(curl -s -o "$WORK/preflight.body" -w '%{http_code}' --max-time 5 "${header[@]}" "$url" || true)
        if [[ $got != "$want" ]]; then
            loud "PREFLIGHT FAILED: $system/$scenario answered ${got:-nothing} (expected $want): $(head -c 300 "$WORK/preflight.body" 2>/dev/null)"
            return 1
        fi
    done
}

# Checks one wrk result line against the expected outcome; prints "ok" or the problem.
judge_result() {
    python3 - "$1" "$2" <<'PY'
import json, sys
run, expect = json.loads(sys.argv[1]), sys.argv[2]
problems = []
if run["requests"] == 0:
    problems.append("no requests completed")
if expect == "200" and run["non2xx"]:
    problems.append(f'{run["non2xx"]} of {run["requests"]} responses were not 2xx/3xx')
if expect != "200" and run["non2xx"] != run["requests"]:
    problems.append(f'{run["requests"] - run["non2xx"]} of {run["requests"]} responses were 2xx/3xx, expected all {expect}')
if run["socket_errors"]:
    problems.append(f'{run["socket_errors"]} socket errors (connect/read/write/timeout)')
print("; ".join(problems) or "ok")
PY
}

# One human line for a wrk result line: req/s and latencies.
describe_result() {
    python3 - "$1" <<'PY'
import json, sys
run = json.loads(sys.argv[1])
print("%9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  server CPU %6.2f us/req  steal %4.1f %%" % (run["rps"], run["p50_us"] / 1000, run["p99_us"] / 1000, run["server_cpu_us_per_request"], run["host_steal_pct"]))
PY
}

# Runs wrk once and appends a JSON line to $WORK/runs.jsonl.
run_one() {
    local round=$1 scenario=$2 system=$3 url want output result verdict server ticks_before ticks_after cpu_us
    local host_before host_after steal_pct
    url=$(url_for "$system" "$scenario")
    want=$(expected_status "$system" "$scenario")
    server=${SERVES[$system:$scenario]:-${SERVES[$system]}}
    wrk_inputs_for "$scenario"
    ticks_before=$(cpu_ticks "$server")
    host_before=$(host_ticks)
    # In the background so that a signal interrupts `wait` and cleanup can stop wrk too.
    env "${WRK_ENV[@]}" timeout $(($(duration_seconds) + 30)) \
        wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "${WRK_ARGS[@]}" "$url" >"$WORK/wrk.out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || true
    WRK_PID=""
    ticks_after=$(cpu_ticks "$server")
    host_after=$(host_ticks)
    output=$(<"$WORK/wrk.out")
    result=$(python3 "$LOADTEST_DIR/wrk_result.py" <"$WORK/wrk.out" || true)
    if [[ -z $result ]]; then
        loud "RUN FAILED: $system/$scenario round $round: wrk printed no result:"$'\n'"$output"
        RUN_PROBLEMS=$((RUN_PROBLEMS + 1))
        return
    fi
    # Server CPU per request, µs: clock ticks over the run ÷ requests (the tail of wrk's last
    # in-flight requests is within noise at thousands of requests per second).
    cpu_us=$(python3 -c 'import json,sys,os; r=json.loads(sys.argv[1]); t=int(sys.argv[3])-int(sys.argv[2]); print("%.2f" % (t*1e6/os.sysconf("SC_CLK_TCK")/max(r["requests"],1)))' "$result" "$ticks_before" "$ticks_after")
    steal_pct=$(python3 -c 'import sys; s0,t0=map(int,sys.argv[1].split()); s1,t1=map(int,sys.argv[2].split()); print("%.1f" % (100*(s1-s0)/max(t1-t0,1)))' "$host_before" "$host_after")
    result="${result%\}},\"server_cpu_us_per_request\":$cpu_us,\"host_steal_pct\":$steal_pct}"
    verdict=$(judge_result "$result" "$want")
    if [[ $verdict != ok ]]; then
        loud "ERRORS in $system/$scenario round $round (expected every response $want): $verdict"
        RUN_PROBLEMS=$((RUN_PROBLEMS + 1))
    fi
    printf '{"round":%d,"scenario":"%s","system":"%s","expected_status":%d,"verdict":"%s",%s\n' \
        "$round" "$scenario" "$system" "$want" "$verdict" "${result#\{}" >>"$WORK/runs.jsonl"
    printf '%s   round %d  %-11s %-10s %s\n' "$(date +%H:%M:%S)" "$round" "$scenario" "$system" "$(describe_result "$result")" >&2
}

run_all_rounds() {
    local round scenario system i
    declare -gA PREFLIGHT_OK=()
    for scenario in ${SCENARIOS//,/ }; do
        for system in ${SYSTEMS//,/ }; do
            applies "$system" "$scenario" || continue
            if preflight "$system" "$scenario"; then
                PREFLIGHT_OK[$system:$scenario]=1
            else
                RUN_PROBLEMS=$((RUN_PROBLEMS + 1))
                echo "$system:$scenario" >>"$WORK/preflight-failed.txt"
            fi
        done
    done
    if [[ $WARMUP != 0 ]]; then
        log "warm-up: wrk -t1 -c$CONNECTIONS -d$WARMUP of each system and scenario, not counted"
        for scenario in ${SCENARIOS//,/ }; do
            for system in ${SYSTEMS//,/ }; do
                [[ -n ${PREFLIGHT_OK[$system:$scenario]:-} ]] || continue
                wrk_inputs_for "$scenario"
                env "${WRK_ENV[@]}" timeout 60 wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "${WRK_ARGS[@]}" \
                    "$(url_for "$system" "$scenario")" >/dev/null 2>&1 || true
            done
        done
    fi
    log "preflight done; $ROUNDS rounds of wrk -t1 -c$CONNECTIONS -d$DURATION, systems alternating within each round, the order turning by one each round"
    local -a systems order
    read -r -a systems <<<"${SYSTEMS//,/ }"
    for ((round = 1; round <= ROUNDS; round++)); do
        # The order turns by one each round (A B C, B C A, C A B, ...), so that no system
        # always runs first or always right after the same other one.
        order=()
        for ((i = 0; i < ${#systems[@]}; i++)); do
            order+=("${systems[(i + round - 1) % ${#systems[@]}]}")
        done
        for scenario in ${SCENARIOS//,/ }; do
            for system in "${order[@]}"; do
                [[ -n ${PREFLIGHT_OK[$system:$scenario]:-} ]] || continue
                run_one "$round" "$scenario" "$system"
                sleep 0.5
            done
        done
    done
}

# --- report -----------------------------------------------------------------

report() {
    TG_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown) \
        TG_CONNECTIONS=$CONNECTIONS TG_DURATION=$DURATION TG_ROUNDS=$ROUNDS TG_WARMUP=$WARMUP \
        TG_SYSTEMS=$SYSTEMS TG_SCENARIOS=$SCENARIOS TG_HAPROXY_VERSION=${HAPROXY_VERSION:-} \
        TG_HAPROXY_THREADS=$HAPROXY_THREADS TG_TOKEN_SIGNER=${TOKEN_SIGNER:-} \
        TG_TOKEN_COUNT=$TOKEN_COUNT TG_UNKNOWN_COUNT=$UNKNOWN_COUNT \
        python3 "$LOADTEST_DIR/report.py" "$WORK/runs.jsonl" "${OUT:-}" "$WORK/preflight-failed.txt"
}

main() {
    check_settings
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    install_missing_tools
    build_binaries
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/tokengate-loadtest.XXXXXX")
    : >"$WORK/runs.jsonl"
    log "work dir $WORK; systems $SYSTEMS; scenarios $SCENARIOS"
    make_keys
    has "$SYSTEMS" tokengate && setup_tokengate
    mint_all_tokens
    has "$SYSTEMS" bare && setup_bare
    has "$SYSTEMS" haproxy && setup_haproxy
    run_all_rounds
    stop_children
    report
    if ((RUN_PROBLEMS)); then
        loud "$RUN_PROBLEMS run(s) or preflight check(s) went wrong: see the !!! lines above"
        exit 3
    fi
}

main "$@"
