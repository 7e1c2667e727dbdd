// tokengate client portal: the test form, the curl line and the JWT maker.
// Loaded from the page's own origin (CSP script-src 'self'); it talks only to that origin,
// and the JWT maker signs with WebCrypto: no secret or key is sent anywhere or stored.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const baseUrl = document.body.dataset.baseUrl || window.location.origin;
  const textEncoder = new TextEncoder();

  // ---- the test form ---------------------------------------------------------------------

  function selectedEndpoint() {
    const option = $("endpoint").selectedOptions[0];
    if (!option) return null;
    return { method: option.dataset.method, path: option.dataset.path };
  }

  function paramNames(path) {
    return path.split("/").filter((s) => s.startsWith(":")).map((s) => s.slice(1));
  }

  function takesBody(method) {
    return method === "POST" || method === "PUT" || method === "PATCH";
  }

  function renderParams() {
    const box = $("params");
    const endpoint = selectedEndpoint();
    const kept = {};
    box.querySelectorAll("input").forEach((input) => { kept[input.dataset.param] = input.value; });
    box.replaceChildren();
    if (!endpoint) return;
    for (const name of paramNames(endpoint.path)) {
      const label = document.createElement("label");
      label.htmlFor = "param-" + name;
      label.textContent = "Path parameter " + name;
      const input = document.createElement("input");
      input.id = "param-" + name;
      input.dataset.param = name;
      input.autocomplete = "off";
      input.spellcheck = false;
      input.value = kept[name] || "";
      input.addEventListener("input", renderCurl);
      box.append(label, input);
    }
    $("body-field").hidden = !takesBody(endpoint.method);
  }

  // The request path with every :param replaced by its percent-encoded value.
  function requestPath(endpoint) {
    return endpoint.path.split("/").map((segment) => {
      if (!segment.startsWith(":")) return segment;
      const input = $("param-" + segment.slice(1));
      return encodeURIComponent(input ? input.value.trim() : "");
    }).join("/");
  }

  function authChoice() {
    return $("auth-jwt").checked ? "jwt" : "token";
  }

  function credentialHeader(credential) {
    return authChoice() === "jwt"
      ? ["Authorization", "Bearer " + credential]
      : ["API-Token", credential];
  }

  function shellQuote(text) {
    return "'" + text.replace(/'/g, "'\\''") + "'";
  }

  // A token or JWT has no inner whitespace: drop what a wrapped paste put there.
  function cleanCredential(text) {
    return text.replace(/\s+/g, "");
  }

  function renderCurl() {
    const endpoint = selectedEndpoint();
    if (!endpoint) { $("curl").textContent = ""; return; }
    const credential = cleanCredential($("credential").value) ||
      (authChoice() === "jwt" ? "YOUR_JWT" : "YOUR_AUTH_TOKEN");
    const [name, value] = credentialHeader(credential);
    const parts = ["curl", "-i"];
    if (endpoint.method !== "GET") parts.push("-X", endpoint.method);
    parts.push("-H", shellQuote(name + ": " + value));
    const body = $("body").value;
    if (takesBody(endpoint.method) && body.trim() !== "") {
      parts.push("-H", shellQuote("Content-Type: application/json"), "--data", shellQuote(body));
    }
    parts.push(shellQuote(baseUrl + requestPath(endpoint)));
    $("curl").textContent = parts.join(" ");
  }

  function pretty(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (_) { return text; }
  }

  async function sendTest(event) {
    event.preventDefault();
    const endpoint = selectedEndpoint();
    if (!endpoint) return;
    const button = $("send");
    button.disabled = true;
    $("status").textContent = "Sending…";
    $("status").className = "status";
    let started = performance.now();
    try {
      const headers = new Headers();
      const credential = cleanCredential($("credential").value);
      if (credential !== "") {
        const [name, value] = credentialHeader(credential);
        headers.set(name, value); // throws on characters a header cannot carry
      }
      const init = { method: endpoint.method, headers, cache: "no-store", credentials: "omit",
        redirect: "manual", referrerPolicy: "no-referrer" };
      const body = $("body").value;
      if (takesBody(endpoint.method) && body.trim() !== "") {
        headers.set("Content-Type", "application/json");
        init.body = body;
      }
      started = performance.now();
      const response = await fetch(requestPath(endpoint), init);
      const text = await response.text();
      const elapsed = performance.now() - started;
      const status = $("status");
      status.textContent = response.status + (response.statusText ? " " + response.statusText : "");
      status.className = "status " + (response.ok ? "ok" : "failed");
      $("elapsed").textContent = "in " + elapsed.toFixed(1) + " ms";
      const lines = [];
      response.headers.forEach((value, name) => lines.push(name + ": " + value));
      $("response-headers").textContent = lines.join("\n");
      $("response-body").textContent = pretty(text);
    } catch (error) {
      $("status").textContent = "No response";
      $("status").className = "status failed";
      $("elapsed").textContent = "";
      $("response-headers").textContent = "";
      $("response-body").textContent = String(error);
    } finally {
      button.disabled = false;
      $("result").hidden = false;
    }
  }

  // ---- the JWT maker (RFC 7515 compact serialization, RFC 7518 HS256 / RS256) ---------------

  function base64url(bytes) {
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function base64Decode(text) {
    const clean = text.trim().replace(/-/g, "+").replace(/_/g, "/").replace(/\s+/g, "");
    const binary = atob(clean);
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  }

  function derLength(length) {
    if (length < 0x80) return [length];
    const bytes = [];
    while (length > 0) { bytes.unshift(length & 0xff); length >>= 8; }
    return [0x80 | bytes.length, ...bytes];
  }

  // Wraps a PKCS#1 RSAPrivateKey in a PKCS#8 PrivateKeyInfo (RFC 5208), which WebCrypto imports.
  function pkcs1ToPkcs8(pkcs1) {
    const algorithm = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
    const octets = [0x04, ...derLength(pkcs1.length), ...pkcs1];
    const inner = [0x02, 0x01, 0x00, ...algorithm, ...octets];
    return new Uint8Array([0x30, ...derLength(inner.length), ...inner]);
  }

  function privateKeyDer(pem) {
    const match = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(pem);
    if (!match) throw new Error("Paste the whole PEM key, from -----BEGIN to -----END.");
    const label = match[1];
    if (label === "OPENSSH PRIVATE KEY") {
      throw new Error("This is an OpenSSH key: convert a copy first with ssh-keygen -p -m PKCS8 -f KEY.");
    }
    if (label === "ENCRYPTED PRIVATE KEY" || /Proc-Type: 4,ENCRYPTED/.test(match[2])) {
      throw new Error("This key is encrypted: the JWT maker needs it without a passphrase.");
    }
    const der = base64Decode(match[2].replace(/^[A-Za-z-]+:.*$/gm, ""));
    if (label === "PRIVATE KEY") return der;
    if (label === "RSA PRIVATE KEY") return pkcs1ToPkcs8(der);
    throw new Error("Expected a PRIVATE KEY or RSA PRIVATE KEY PEM block, found " + label + ".");
  }

  async function makeJwt(event) {
    event.preventDefault();
    const error = $("jwt-error");
    error.textContent = "";
    $("jwt-out").value = "";
    try {
      if (!window.crypto || !window.crypto.subtle) {
        throw new Error("This browser offers WebCrypto only on https:// or localhost pages; open the portal over HTTPS.");
      }
      const sub = $("jwt-sub").value.trim();
      if (sub === "") throw new Error("Fill in your auth token: it is the JWT's sub claim.");
      const minutes = Number($("jwt-exp").value);
      if (!Number.isInteger(minutes) || minutes < 1 || minutes > 525600) {
        throw new Error("The expiry must be a whole number of minutes from 1 to 525600.");
      }
      const alg = $("alg-rs256").checked ? "RS256" : "HS256";
      const now = Math.floor(Date.now() / 1000);
      const claims = { sub, iat: now, exp: now + minutes * 60 };
      const name = $("jwt-name").value.trim();
      if (name !== "") claims.name = name;
      const header = { alg, typ: "JWT" };
      const signingInput = base64url(textEncoder.encode(JSON.stringify(header))) + "." +
        base64url(textEncoder.encode(JSON.stringify(claims)));
      let key;
      let algorithm;
      if (alg === "HS256") {
        const secret = $("jwt-secret").value;
        if (secret === "") throw new Error("Fill in the shared secret.");
        let keyBytes;
        try {
          keyBytes = $("jwt-secret-base64").checked ? base64Decode(secret) : textEncoder.encode(secret);
        } catch (_) {
          throw new Error("The secret is not valid base64.");
        }
        algorithm = { name: "HMAC" };
        key = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      } else {
        const der = privateKeyDer($("jwt-key").value);
        algorithm = { name: "RSASSA-PKCS1-v1_5" };
        try {
          key = await crypto.subtle.importKey("pkcs8", der, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["sign"]);
        } catch (_) {
          throw new Error("The browser could not read this key as an RSA private key.");
        }
      }
      const signature = await crypto.subtle.sign(algorithm, key, textEncoder.encode(signingInput));
      $("jwt-out").value = signingInput + "." + base64url(new Uint8Array(signature));
    } catch (e) {
      error.textContent = e.message || String(e);
    }
  }

  function useJwt() {
    const jwt = $("jwt-out").value;
    if (jwt === "") return;
    $("credential").value = jwt;
    $("auth-jwt").checked = true;
    renderCurl();
    $("credential").focus();
  }

  function renderAlg() {
    const rs = $("alg-rs256").checked;
    $("rs256-fields").hidden = !rs;
    $("hs256-fields").hidden = rs;
  }

  // ---- wiring --------------------------------------------------------------------------------

  $("endpoint").addEventListener("change", () => { renderParams(); renderCurl(); });
  $("credential").addEventListener("input", renderCurl);
  $("body").addEventListener("input", renderCurl);
  $("auth-token").addEventListener("change", renderCurl);
  $("auth-jwt").addEventListener("change", renderCurl);
  $("test").addEventListener("submit", sendTest);
  $("jwt").addEventListener("submit", makeJwt);
  $("jwt-use").addEventListener("click", useJwt);
  $("alg-hs256").addEventListener("change", renderAlg);
  $("alg-rs256").addEventListener("change", renderAlg);
  if (!$("endpoint").options.length) $("send").disabled = true;
  renderParams();
  renderAlg();
  renderCurl();
})();
