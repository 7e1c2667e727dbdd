#!/usr/bin/env bash
# Mints a file of signed JWTs, one per line, for the wrk load test.
#
# Every token gets a distinct `jti` claim (1..N), so N tokens are N different
# signatures: a server that memoizes verified tokens has to verify each once.
# Spawning a process per token is slow-ish (~2-5 ms each), so keep N in the
# low thousands; 2000 (the default) is plenty to defeat nothing but a cache.
#
# Usage:
#   loadtest/mint_tokens.sh --out FILE --sub AUTH_TOKEN --name NAME \
#       (--key PRIVATE_KEY_FILE | --secret S | --secret-file F) \
#       [--alg RS256|HS256] [--count N] [--exp 1h] [--random-sub]
#
#   --sub         the profile's auth token (the JWT `sub` claim)
#   --random-sub  ignore --sub; give each token its own random 64-hex `sub`
#                 (tokens for a profile that does not exist: the `unknown` case)
#   --alg         default RS256 with --key, HS256 with --secret/--secret-file
#
# Environment:
#   TOKENGATE     the tokengate binary (default target/release/tokengate)
#   MINT_BACKEND  auto (default) | tokengate | fallback
#                 auto: `tokengate jwt sign` if that binary works, otherwise
#                 the FALLBACK: python3 builds the JWT, `openssl dgst -sha256
#                 -sign` makes RS256 signatures, python's hmac makes HS256 ones.
#                 The fallback exists only so the load test can run before
#                 tokengate's own signer does; it says so loudly on stderr.
#   MINT_JOBS     parallel signers (default 2)
#
# Only PEM private keys work with the fallback (openssl cannot read the
# OpenSSH private key format); `tokengate jwt sign --key` reads both.
set -euo pipefail

TOKENGATE=${TOKENGATE:-target/release/tokengate}
MINT_BACKEND=${MINT_BACKEND:-auto}
MINT_JOBS=${MINT_JOBS:-2}

out="" count=2000 sub="" random_sub=0 name="loadtest" alg="" exp="1h"
key_flag="" key_value="" plan=""

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
die() { echo "mint_tokens.sh: $*" >&2; exit 1; }

parse_args() {
    while (($#)); do
        case $1 in
            --out) out=$2; shift 2 ;;
            --count) count=$2; shift 2 ;;
            --sub) sub=$2; shift 2 ;;
            --random-sub) random_sub=1; shift ;;
            --name) name=$2; shift 2 ;;
            --alg) alg=$2; shift 2 ;;
            --exp) exp=$2; shift 2 ;;
            --key|--secret|--secret-file) key_flag=$1; key_value=$2; shift 2 ;;
            -h|--help) usage ;;
            *) echo "mint_tokens.sh: unknown argument $1" >&2; usage ;;
        esac
    done
    [[ -n $out ]] || die "--out is required"
    [[ -n $key_flag ]] || die "one of --key, --secret, --secret-file is required"
    [[ $random_sub == 1 || -n $sub ]] || die "--sub (or --random-sub) is required"
    [[ $count =~ ^[1-9][0-9]*$ ]] || die "--count must be a positive integer"
    if [[ -z $alg ]]; then
        [[ $key_flag == --key ]] && alg=RS256 || alg=HS256
    fi
    [[ $alg == RS256 || $alg == HS256 ]] || die "--alg must be RS256 or HS256"
}

# Lines "jti sub" for every token to mint.
write_token_plan() {
    python3 - "$count" "$random_sub" "$sub" <<'PY'
import secrets, sys
count, random_sub, sub = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
for jti in range(1, count + 1):
    print(jti, secrets.token_hex(32) if random_sub else sub)
PY
}

# One token via `tokengate jwt sign`; arguments: jti sub. Settings come from MINT_* env.
mint_one_with_tokengate() {
    "$TOKENGATE" jwt sign --sub "$2" --name "$MINT_NAME" "$MINT_KEY_FLAG" "$MINT_KEY_VALUE" \
        --alg "$MINT_ALG" --exp "$MINT_EXP" --claim "jti=$1"
}

tokengate_can_sign() {
    [[ -x $TOKENGATE ]] || return 1
    local probe
    probe=$(MINT_NAME=$name MINT_KEY_FLAG=$key_flag MINT_KEY_VALUE=$key_value MINT_ALG=$alg MINT_EXP=$exp \
        mint_one_with_tokengate 0 "${sub:-probe}" 2>/dev/null) || return 1
    [[ $probe =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]]
}

mint_with_tokengate() {
    local plan=$1
    export -f mint_one_with_tokengate
    export TOKENGATE MINT_NAME=$name MINT_KEY_FLAG=$key_flag MINT_KEY_VALUE=$key_value MINT_ALG=$alg MINT_EXP=$exp
    xargs -P "$MINT_JOBS" -L 1 bash -c 'mint_one_with_tokengate "$@"' _ <"$plan"
}

# FALLBACK signer: python3 + openssl, used only when tokengate cannot sign yet.
mint_with_fallback() {
    local plan=$1
    python3 - "$plan" "$name" "$alg" "$exp" "$key_flag" "$key_value" "$MINT_JOBS" <<'PY'
import base64, concurrent.futures, hashlib, hmac, json, subprocess, sys, time
plan, name, alg, exp, key_flag, key_value, jobs = sys.argv[1:8]

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)

if key_flag == "--key":
    key_file = key_value
elif key_flag == "--secret":
    secret = key_value.encode()
else:  # --secret-file: the file's text, without the trailing newline
    secret = open(key_value, "rb").read().rstrip(b"\r\n")

header = b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
now = int(time.time())

def mint(line: str) -> str:
    jti, sub = line.split()
    claims = {"sub": sub, "name": name, "iat": now, "exp": now + seconds(exp), "jti": jti}
    signing_input = header + "." + b64url(json.dumps(claims, separators=(",", ":")).encode())
    if alg == "HS256":
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    else:
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_file],
                                   input=signing_input.encode(), capture_output=True, check=True).stdout
    return signing_input + "." + b64url(signature)

with open(plan) as lines, concurrent.futures.ThreadPoolExecutor(int(jobs)) as pool:
    for token in pool.map(mint, [l for l in lines if l.strip()]):
        print(token)
PY
}

check_output() {
    local lines bad
    lines=$(wc -l <"$out")
    bad=$(grep -cvE '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' "$out" || true)
    [[ $lines -eq $count && $bad -eq 0 ]] || die "$out: expected $count JWTs, got $lines lines ($bad malformed)"
}

main() {
    parse_args "$@"
    local backend
    plan=$(mktemp)
    trap 'rm -f "$plan"' EXIT
    write_token_plan >"$plan"
    case $MINT_BACKEND in
        tokengate) tokengate_can_sign || die "$TOKENGATE cannot run 'jwt sign'"; backend=tokengate ;;
        fallback) backend=fallback ;;
        auto) if tokengate_can_sign; then backend=tokengate; else backend=fallback; fi ;;
        *) die "MINT_BACKEND must be auto, tokengate or fallback" ;;
    esac
    if [[ $backend == fallback ]]; then
        echo "mint_tokens.sh: FALLBACK signer (python3 + openssl), not tokengate: $TOKENGATE cannot 'jwt sign' yet" >&2
        mint_with_fallback "$plan" >"$out"
    else
        mint_with_tokengate "$plan" >"$out"
    fi
    check_output
    echo "mint_tokens.sh: $count $alg tokens -> $out (signer: $backend)" >&2
}

main "$@"
