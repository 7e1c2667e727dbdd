#!/usr/bin/env bash
# Fills the seed corpora fuzz/corpus/<target>/ from tests/data and inline samples.
# Corpora are generated (gitignored); run this before fuzzing (run.sh does). Needs bash and
# coreutils (base64, sha1sum); uses openssl, when present, for PKCS#1 private key seeds.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data="$here/../tests/data"
interop="$data/jwt-interop"
corpus="$here/corpus"

# seed TARGET: stdin becomes one corpus file named by its content hash.
seed() {
    local dir="$corpus/$1" tmp
    mkdir -p "$dir"
    tmp="$(mktemp "$dir/.seed.XXXXXX")"
    cat > "$tmp"
    mv "$tmp" "$dir/$(sha1sum < "$tmp" | cut -c1-40)"
}

# base64url (no padding) → bytes.
b64url_decode() {
    local s="${1//-/+}"
    s="${s//_//}"
    while (( ${#s} % 4 )); do s="$s="; done
    printf '%s' "$s" | base64 -d 2>/dev/null || true
}

# PEM file → DER bytes of its first block.
pem_der() {
    sed -n '/-----BEGIN/,/-----END/p' "$1" | sed '1d;$d' | tr -d '\r\n' | base64 -d
}

# A file's text as a JSON string body (quotes added by the caller).
json_escape() {
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' "$1" | awk '{ printf "%s\\n", $0 }'
}

# Seeds are added by content hash, so re-running keeps (and never duplicates) what fuzzing found.

# ---- jwt: raw tokens (flag byte 0x00/0x1e) and their decoded JSON (flag byte 0x01/0x07) ----
tokens=$(grep -ho '"token": *"[^"]*"' "$interop/cases.json" "$data/rfc7515.json" | sed 's/.*"\([^"]*\)"$/\1/')
for tok in $tokens; do
    printf '\x00%s' "$tok" | seed jwt
    printf '\x1e%s' "$tok" | seed jwt
    IFS=. read -r h p s <<< "$tok"
    { printf '\x01'; b64url_decode "$h"; printf '\xff'; b64url_decode "$p"; printf '\xffsig'; } | seed jwt
    { printf '\x07'; b64url_decode "$h"; printf '\xff'; b64url_decode "$p"; printf '\xff'; b64url_decode "$s"; } | seed jwt
done
printf '\x01{"alg":"HS256","kid":"k"}\xff{"sub":"t","exp":1e3,"nbf":-5.5,"iat":18446744073709551615,"iss":"joe","name":"N","jti":1}\xffsig' | seed jwt
printf '\x03{"alg":"RS256","x":[1,{"y":null}]}\xff{"workato_sub":"","https://www.workato.com/sub":"a","s\\u0075b":"b"}\xffs' | seed jwt
printf '\x05{"alg":"HS256"}\xff{"a":1,"\\u0061":2}\xffs' | seed jwt

# ---- credential: header lines name:value ----
# No pipe into head here: under set -e and pipefail, head exiting before printf's second 4 KiB
# write killed the script with SIGPIPE, silently, in about 1 run in 40 on a loaded machine.
first_tok=${tokens%%[[:space:]]*}
printf 'authorization: Bearer %s\n' "$first_tok" | seed credential
printf 'api-token: d4aee74e131926682043395edecaf377765fae48e56e232cb295af475b314545\n' | seed credential
printf 'Authorization: Basic %s\n' "$(printf 'api-token:secret-token' | base64 -w0)" | seed credential
printf 'authorization: basic %s\n' "$(printf 'API-TOKEN: spaced ' | base64 -w0)" | seed credential
printf 'api-token: a\napi-token: b\n' | seed credential
printf 'api-token: a\nauthorization: Bearer b\n' | seed credential
printf 'authorization:   BEARER   x.y.z  \nx-other: 1\n' | seed credential
printf 'authorization: Digest foo\n' | seed credential

# ---- keys: public keys as text and DER, the HMAC secret, private keys (flagged) ----
for f in "$interop"/*.pem "$interop"/ssh_rsa.pub "$interop"/hs256.secret "$interop"/rsa2048.key "$interop"/ssh_rsa; do
    seed keys < "$f"
done
for f in "$interop"/*.pem; do
    pem_der "$f" | seed keys
done
printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x\n' | seed keys
printf 'PuTTY-User-Key-File-3: ssh-rsa\n' | seed keys
printf '%s' 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0' | seed keys

# ---- signing_key: private keys as text and DER ----
for f in "$interop"/rsa2048.key "$interop"/rsa1024.key "$interop"/ssh_rsa; do
    seed signing_key < "$f"
done
pem_der "$interop/rsa2048.key" | seed signing_key
pem_der "$interop/ssh_rsa" | seed signing_key
if command -v openssl > /dev/null; then
    pkcs1="$(openssl rsa -in "$interop/rsa2048.key" -traditional 2>/dev/null || true)"
    if [[ -n "$pkcs1" ]]; then
        printf '%s\n' "$pkcs1" | seed signing_key
        printf '%s\n' "$pkcs1" | sed '1d;$d' | tr -d '\n' | base64 -d | seed signing_key
    fi
fi
printf -- '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n' | seed signing_key
printf -- '-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----\n' | seed signing_key

# ---- path_route: selector byte (method, peer), path, then X-Forwarded-For / header-name lines ----
i=0
for p in / /c /c/ /c/orders /c/orders/42 /c/orders/42/ /c/orders/42/lines /c/orders/42/lines/7 \
         /c/a.b/c /c/~x/_y-z/q /c/x/y /c/..a/.b./z /c/orders/%2e%2e /c/orders/. /c/orders/.. \
         /c/orders/%2E/lines /c/%6Frders/%34%32 /c/a%20b/%c3%a9 /c/a%2Fb /c/a%5cb /c/a%00 \
         '/c/a\b' /c/a%zz /c/a%2 '*' '' /../../etc/passwd /c/./orders/../orders/1 \
         '/c/orders/42?x=1&y=%2F' /c//orders// /c/.../lines /x/y/z/../../.. \
         /c/orders/%252e%252e /c/%7e%2D%5f/%41 '/c/.%2E/x?y' '/c/%2e?q#f' '/c/orders/1#frag' \
         '/c/orders/1..;x' '/c/..%3Bx;y/z'; do
    printf '%b%s\n10.0.0.1, 203.0.113.9\nx-tokengate-client-id\n' "\\x$(printf '%02x' $((i % 8)))" "$p" | seed path_route
    i=$((i + 1))
done
printf '\x00/c/orders/1\n[2001:db8::1]:443, 10.1.1.1\n192.168.1.1:80\nnonsense, 10.0.0.6\nX_Tokengate-Auth\n' | seed path_route
printf '\x02/c/x\n::ffff:10.0.0.9, ::1\n\n , ,\nx-tokengate\n' | seed path_route

# ---- admin_input: request bodies as the admin API receives them ----
secret="$(json_escape "$interop/hs256.secret" | sed 's/\\n$//')"
for body in \
    '{"name":"Shop","path":"shop","endpoints":[{"method":"GET","path":"/orders/:id","upstream":"http://127.0.0.1:9000/api/"},{"method":"post","path":"/orders","response":{"status":201,"headers":{"x-mock":"1","Content-Type":"application/json"},"body":{"ok":true,"n":[1,2.5,-3]}}},{"method":"GET","path":"/","response":{}},{"id":"e1","name":"Lines","method":"GET","path":"/orders/:id/lines/:line","upstream":"http://[::1]:8000","active":false}]}' \
    '{"id":"c1","name":"A","path":"a-1","endpoints":[]}' \
    '{"name":"x","path":"p","endpoints":[{"method":"GET","path":"/a.b/c~d_e-f","response":{"status":599,"body":null}},{"method":"DELETE","path":"/:a/:b","upstream":"HTTP://backend.internal:8080/v2"}]}' \
    '{"name":"dup","path":"d","endpoints":[{"method":"GET","path":"/a/:x","response":{}},{"method":"get","path":"/a/:y","response":{}}]}' \
    '{"name":"bad","path":"Bad","endpoints":[{"method":"TRACE","path":"/a//b","upstream":"https://x","response":{"status":99,"headers":{"content-length":"1"}}}]}' \
    '{"type":"token"}' \
    "{\"type\":\"jwt\",\"alg\":\"HS256\",\"secret\":\"$secret\",\"required_claims\":[\"exp\",\"iss\",\"exp\"],\"max_lifetime_s\":3600,\"allowed_issuers\":[\"joe\"],\"leeway_s\":60}" \
    '{"type":"jwt","alg":"HS256","secret":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0","secret_is_base64":true}' \
    '{"type":"jwt","alg":"RS256","leeway_s":5}' \
    '{"type":"jwt","alg":"RS256","public_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}' \
    '{"name":"p","collections":["c1"],"auth":{"type":"token"},"policy":{"rate_limit":{"requests":10,"per_s":1}},"ip_allow":["10.1.0.0/16","::1","10.1.2.3/16","2001:db8::1/32"]}' \
    '{"rate_limit":{"requests":0,"per_s":1}}' \
    '["10.0.0.0/8"," 192.168.1.7/24 ","::ffff:1.2.3.4/100","10.0.0.0/099"]' \
    '{"grace_s":604800}' '{"grace_s":3600.5}' 'null' '{}' \
    '["/orders/:id","http://h:1/a","GET","shop-1","x-custom","v","content-length","1"]'; do
    printf '%s' "$body" | seed admin_input
done
for f in "$interop"/ssh_rsa.pub "$interop"/rsa2048.spki.pem "$interop"/rsa2048.cert.pem; do
    printf '{"type":"jwt","alg":"RS256","public_key":"%s","required_claims":["name"]}' "$(json_escape "$f")" | seed admin_input
done
# A fixed-response body nested deep (any JSON value is accepted as a body).
deep_open=$(printf '[%.0s' $(seq 100)); deep_close=$(printf ']%.0s' $(seq 100))
printf '{"name":"deep","path":"deep","endpoints":[{"method":"GET","path":"/","response":{"body":%s1%s}}]}' "$deep_open" "$deep_close" | seed admin_input
printf '/orders/:id\nhttp://127.0.0.1:9000/base/\nx-h\nv\n' | seed admin_input

for t in jwt credential keys signing_key path_route admin_input; do
    printf '%s: %s seeds\n' "$t" "$(find "$corpus/$t" -type f | wc -l)"
done
