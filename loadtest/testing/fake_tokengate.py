#!/usr/bin/env python3
"""A slow stand-in for the tokengate binary, for testing the load-test scripts only.

NOT a benchmark target and NOT tokengate: it implements just enough of the
SPEC's contract (§3 data plane for `response` endpoints, §4 admin API create
calls, §5 `serve` and `jwt sign`) for loadtest/compare.sh and mint_tokens.sh
to be exercised end to end before the real server exists:

    TOKENGATE=loadtest/testing/fake_tokengate.py SYSTEMS=tokengate SKIP_BUILD=1 \\
        ROUNDS=1 DURATION=1s loadtest/compare.sh

Needs python3 with the `cryptography` package (RS256).
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_public_key(text):
    text = text.strip()
    if text.startswith("ssh-rsa "):
        return serialization.load_ssh_public_key(text.encode())
    return serialization.load_pem_public_key(text.encode())


class Store:
    """The whole state in <data-dir>/state.json, rewritten on every change."""

    def __init__(self, data_dir):
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.join(data_dir, "state.json")
        self.lock = threading.Lock()
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.state = json.load(f)
        else:
            self.state = {"collections": [], "clients": [], "profiles": []}

    def save(self):
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(self.path + ".tmp", self.path)

    def profile_by_token(self, token):
        digest = hashlib.sha256(token.encode()).hexdigest()
        return next((p for p in self.state["profiles"] if p["digest"] == digest), None)


def json_response(handler, status, body, headers=()):
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in headers:
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def reject(handler, code):
    challenge = 'Bearer realm="tokengate"' + ("" if code == "missing_credentials" else ', error="invalid_token"')
    json_response(handler, 401, {"error": code, "message": "The request was not authenticated."},
                  [("WWW-Authenticate", challenge)])


def verify_jwt(store, token):
    """Returns the profile the JWT authenticates, or None."""
    parts = token.split(".")
    if len(parts) != 3 or not all(re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in parts):
        return None
    try:
        header, claims = json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1]))
    except ValueError:
        return None
    sub = claims.get("sub") or header.get("kid")
    profile = store.profile_by_token(sub) if isinstance(sub, str) else None
    if not profile or profile["auth"]["type"] != "jwt" or header.get("alg") != profile["auth"]["alg"]:
        return None
    signing_input, signature = f"{parts[0]}.{parts[1]}".encode(), b64url_decode(parts[2])
    auth = profile["auth"]
    if auth["alg"] == "HS256":
        expected = hmac.new(auth["secret"].encode(), signing_input, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            return None
    else:
        try:
            load_public_key(auth["public_key"]).verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        except Exception:
            return None
    if isinstance(claims.get("exp"), (int, float)) and claims["exp"] + 60 < time.time():
        return None
    return profile


def data_plane(store):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            api_token, authorization = self.headers.get_all("API-Token") or [], self.headers.get("Authorization")
            if len(api_token) + (authorization is not None) > 1:
                return reject(self, "multiple_credentials")
            if api_token:
                profile = store.profile_by_token(api_token[0])
                if not profile or profile["auth"]["type"] != "token":
                    return reject(self, "invalid_token")
            elif authorization and authorization[:7].lower() == "bearer ":
                profile = verify_jwt(store, authorization[7:].strip())
                if not profile:
                    return reject(self, "invalid_token")
            else:
                return reject(self, "missing_credentials")
            for collection in store.state["collections"]:
                for endpoint in collection["endpoints"]:
                    if self.path == "/" + collection["path"] + endpoint["path"] and self.command == endpoint["method"]:
                        if collection["id"] not in profile["collections"]:
                            return json_response(self, 403, {"error": "forbidden", "message": "Not granted."})
                        response = endpoint["response"]
                        return json_response(self, response.get("status", 200), response.get("body"))
            json_response(self, 404, {"error": "not_found", "message": "No such endpoint."})

    return Handler


def admin_plane(store, admin_key):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def authorized(self):
            if self.headers.get("Authorization") == f"Bearer {admin_key}":
                return True
            json_response(self, 401, {"error": "unauthorized", "message": "Wrong admin key."})
            return False

        def do_GET(self):
            if not self.authorized():
                return
            if self.path == "/healthz":
                return json_response(self, 200, {"ok": True})
            json_response(self, 404, {"error": "not_found", "message": "No such call."})

        def do_POST(self):
            if not self.authorized():
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with store.lock:
                if self.path == "/v1/collections":
                    body["id"] = secrets.token_hex(8)
                    for endpoint in body["endpoints"]:
                        endpoint["id"] = secrets.token_hex(8)
                    store.state["collections"].append(body)
                    result = body
                elif self.path == "/v1/clients":
                    result = {"id": secrets.token_hex(8), "name": body["name"], "portal_key": secrets.token_hex(16),
                              "active": True}
                    store.state["clients"].append(result)
                elif m := re.fullmatch(r"/v1/clients/([0-9a-f]+)/profiles", self.path):
                    token = secrets.token_hex(32)
                    profile = {"id": secrets.token_hex(8), "client_id": m.group(1), "name": body["name"],
                               "collections": body["collections"], "auth": body["auth"], "active": True,
                               "digest": hashlib.sha256(token.encode()).hexdigest()}
                    store.state["profiles"].append(profile)
                    result = {**{k: v for k, v in profile.items() if k != "digest"}, "auth_token": token,
                              "auth_token_masked": "…" + token[-4:]}
                else:
                    return json_response(self, 404, {"error": "not_found", "message": "No such call."})
                store.save()
            json_response(self, 201, result)

    return Handler


def serve(args):
    store = Store(args.data_dir)
    admin_key = os.environ.get("TOKENGATE_ADMIN_KEY")
    if not admin_key:
        key_file = os.path.join(args.data_dir, "admin.key")
        if not os.path.exists(key_file):
            with open(key_file, "w") as f:
                f.write(secrets.token_hex(32))
        admin_key = open(key_file).read().strip()
    servers = []
    for address, handler in ((args.listen, data_plane(store)), (args.admin_listen, admin_plane(store, admin_key))):
        host, port = address.rsplit(":", 1)
        servers.append(ThreadingHTTPServer((host, int(port)), handler))
    threading.Thread(target=servers[1].serve_forever, daemon=True).start()
    print(f"fake tokengate on {args.listen}, admin {args.admin_listen}, cache {args.cache_capacity}", file=sys.stderr)
    servers[0].serve_forever()


def jwt_sign(args):
    seconds = int(args.exp[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[args.exp[-1]]
    now = int(time.time())
    claims = {"sub": args.sub, "name": args.name, "iat": now, "exp": now + seconds}
    for claim in args.claim:
        key, _, value = claim.partition("=")
        claims[key] = value
    if args.key:
        alg = args.alg or "RS256"
        key = serialization.load_pem_private_key(open(args.key, "rb").read(), password=None)
    else:
        alg = args.alg or "HS256"
        secret = args.secret.encode() if args.secret is not None else open(args.secret_file, "rb").read().rstrip(b"\r\n")
    signing_input = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "." + b64url(json.dumps(claims).encode())
    if alg == "HS256":
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    else:
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    print(signing_input + "." + b64url(signature))


def main():
    parser = argparse.ArgumentParser(prog="fake_tokengate")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve")
    serve_parser.add_argument("--listen", default="127.0.0.1:8080")
    serve_parser.add_argument("--admin-listen", default="127.0.0.1:8081")
    serve_parser.add_argument("--data-dir", default="./tokengate-data")
    serve_parser.add_argument("--cache-capacity", type=int, default=10000)
    jwt_parser = commands.add_parser("jwt").add_subparsers(dest="jwt_command", required=True).add_parser("sign")
    jwt_parser.add_argument("--sub", required=True)
    jwt_parser.add_argument("--name", required=True)
    key_group = jwt_parser.add_mutually_exclusive_group(required=True)
    key_group.add_argument("--secret")
    key_group.add_argument("--secret-file")
    key_group.add_argument("--key")
    jwt_parser.add_argument("--alg", choices=["HS256", "RS256"])
    jwt_parser.add_argument("--exp", default="1h")
    jwt_parser.add_argument("--claim", action="append", default=[])
    args = parser.parse_args()
    serve(args) if args.command == "serve" else jwt_sign(args)


if __name__ == "__main__":
    main()
