//! `tokengate collection|client|profile …`: the admin API from the shell.
//!
//! Every command prints the answer's JSON body, pretty, on stdout and exits 0 on a 2xx answer
//! (a `DELETE` answers 204 with no body: nothing is printed on stdout). An error answer prints
//! `error: <status> <code>: <message>` on stderr and exits 1; so does a connection failure or a
//! missing admin key. Bad arguments exit 2. The admin key is never printed.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use http::Method;
use serde_json::{json, Map, Value};

use super::admin_client::{encode_component, load_admin_key, AdminClient, Answer, BaseUrl};
use super::failure::Failure;

/// Where the admin API is and where its key is; accepted before or after the subcommand.
#[derive(Debug, Clone, Args)]
pub struct AdminOpts {
    /// Base URL of the admin API (http:// only).
    #[arg(
        long,
        global = true,
        help_heading = "Admin API",
        env = "TOKENGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:8081",
        value_name = "URL"
    )]
    pub admin_url: String,
    /// The server's data directory: the admin key is read from DIR/admin.key unless the
    /// TOKENGATE_ADMIN_KEY environment variable is set.
    #[arg(
        long,
        global = true,
        help_heading = "Admin API",
        default_value = "tokengate-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
}

/// An object id as given on the command line: not empty.
fn id_arg(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        Err("an id must not be empty".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

// ----- collection -----

/// `tokengate collection …`.
#[derive(Debug, Args)]
pub struct CollectionArgs {
    #[command(flatten)]
    opts: AdminOpts,
    #[command(subcommand)]
    command: CollectionCommand,
}

/// The collection subcommands.
#[derive(Debug, Subcommand)]
enum CollectionCommand {
    /// Create a collection from flags or from a JSON file.
    #[command(after_help = ENDPOINT_HELP)]
    Create(CollectionCreate),
    /// List every collection.
    List,
    /// Show one collection.
    Get {
        /// The collection id.
        #[arg(value_parser = id_arg)]
        id: String,
    },
    /// Replace a collection with the JSON in a file (PUT; endpoints keep their ids when the
    /// file gives them).
    Put {
        /// The collection id.
        #[arg(value_parser = id_arg)]
        id: String,
        /// JSON file with {"name","path","endpoints":[…]}; - reads stdin.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete a collection (and remove it from every profile that grants it).
    Delete {
        /// The collection id.
        #[arg(value_parser = id_arg)]
        id: String,
    },
}

const ENDPOINT_HELP: &str = "\
Endpoint SPEC: \"METHOD /path TARGET\", three parts separated by spaces:
  METHOD  GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS
  /path   the endpoint path inside the collection; :name marks a parameter
  TARGET  either an upstream URL starting with http://
          or a fixed response: a JSON object {\"status\"?,\"headers\"?,\"body\"?}
Examples:
  --endpoint 'GET /orders/:id http://127.0.0.1:9000/api'
  --endpoint 'GET /hello {\"status\":200,\"body\":{\"ok\":true}}'
The collection is served under /<path>/…, e.g. --path shop → /shop/orders/42.";

/// Flags of `collection create`.
#[derive(Debug, Args)]
struct CollectionCreate {
    /// Display name.
    #[arg(long, required_unless_present = "file", value_name = "NAME")]
    name: Option<String>,
    /// URL segment the collection is served under (a-z, 0-9, -).
    #[arg(long, required_unless_present = "file", value_name = "PATH")]
    path: Option<String>,
    /// An endpoint, "METHOD /path TARGET" (see below); repeat for more.
    #[arg(long = "endpoint", value_name = "SPEC", value_parser = parse_endpoint)]
    endpoints: Vec<Value>,
    /// Take the whole body from a JSON file instead ({"name","path","endpoints":[…]}); - reads stdin.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "path", "endpoints"])]
    file: Option<PathBuf>,
}

/// Parses an endpoint SPEC `METHOD /path TARGET` into the admin API's endpoint object.
fn parse_endpoint(spec: &str) -> Result<Value, String> {
    let usage = "expected \"METHOD /path TARGET\" where TARGET is an http:// URL or a JSON object";
    let spec = spec.trim();
    let (method, rest) = spec
        .split_once(char::is_whitespace)
        .ok_or_else(|| usage.to_owned())?;
    let (path, target) = rest
        .trim_start()
        .split_once(char::is_whitespace)
        .ok_or_else(|| usage.to_owned())?;
    let target = target.trim();
    if !path.starts_with('/') {
        return Err(format!("the path {path:?} must start with /; {usage}"));
    }
    let mut endpoint = Map::new();
    endpoint.insert("method".into(), json!(method.to_ascii_uppercase()));
    endpoint.insert("path".into(), json!(path));
    if target.starts_with('{') {
        let response: Value = serde_json::from_str(target)
            .map_err(|e| format!("the fixed response is not valid JSON ({e})"))?;
        endpoint.insert("response".into(), response);
    } else if has_prefix_ignore_case(target, "http://")
        || has_prefix_ignore_case(target, "https://")
    {
        endpoint.insert("upstream".into(), json!(target));
    } else {
        return Err(format!("the target {target:?} is neither; {usage}"));
    }
    Ok(Value::Object(endpoint))
}

/// Whether `text` starts with the ASCII `prefix`, ignoring case.
fn has_prefix_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Runs `tokengate collection …`.
pub fn run_collection(args: CollectionArgs) -> i32 {
    finish(collection(args))
}

fn collection(args: CollectionArgs) -> Result<Outcome, Failure> {
    // Local input is checked before the key is looked for or the server is called.
    let request = match args.command {
        CollectionCommand::Create(create) => {
            let body = match create.file {
                Some(file) => read_json_file(&file)?,
                None => json!({
                    "name": create.name,
                    "path": create.path,
                    "endpoints": create.endpoints,
                }),
            };
            Call::new(Method::POST, "/v1/collections".into()).body(body)
        }
        CollectionCommand::List => Call::new(Method::GET, "/v1/collections".into()),
        CollectionCommand::Get { id } => Call::new(Method::GET, item("collections", &id)),
        CollectionCommand::Put { id, file } => {
            Call::new(Method::PUT, item("collections", &id)).body(read_json_file(&file)?)
        }
        CollectionCommand::Delete { id } => {
            Call::new(Method::DELETE, item("collections", &id)).deleted("collection", id)
        }
    };
    request.send(&args.opts)
}

// ----- client -----

/// `tokengate client …`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    opts: AdminOpts,
    #[command(subcommand)]
    command: ClientCommand,
}

/// The client subcommands.
#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Create a client (prints its id, portal key and portal URL).
    Create {
        /// Display name.
        #[arg(long, value_name = "NAME")]
        name: String,
    },
    /// List every client.
    List,
    /// Show one client.
    Get {
        /// The client id.
        #[arg(value_parser = id_arg)]
        id: String,
    },
    /// Disable a client: every one of its profiles is refused until it is enabled again.
    Disable {
        /// The client id.
        #[arg(value_parser = id_arg)]
        id: String,
    },
    /// Enable a disabled client.
    Enable {
        /// The client id.
        #[arg(value_parser = id_arg)]
        id: String,
    },
    /// Delete a client and all its profiles.
    Delete {
        /// The client id.
        #[arg(value_parser = id_arg)]
        id: String,
    },
}

/// Runs `tokengate client …`.
pub fn run_client(args: ClientArgs) -> i32 {
    let request = match args.command {
        ClientCommand::Create { name } => {
            Call::new(Method::POST, "/v1/clients".into()).body(json!({ "name": name }))
        }
        ClientCommand::List => Call::new(Method::GET, "/v1/clients".into()),
        ClientCommand::Get { id } => Call::new(Method::GET, item("clients", &id)),
        ClientCommand::Disable { id } => {
            Call::new(Method::PATCH, item("clients", &id)).body(json!({"active": false}))
        }
        ClientCommand::Enable { id } => {
            Call::new(Method::PATCH, item("clients", &id)).body(json!({"active": true}))
        }
        ClientCommand::Delete { id } => {
            Call::new(Method::DELETE, item("clients", &id)).deleted("client", id)
        }
    };
    finish(request.send(&args.opts))
}

// ----- profile -----

/// `tokengate profile …`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(flatten)]
    opts: AdminOpts,
    #[command(subcommand)]
    command: ProfileCommand,
}

/// The profile subcommands.
#[derive(Debug, Subcommand)]
enum ProfileCommand {
    /// Create an access profile for a client; prints it with its auth token (shown this once).
    #[command(after_help = PROFILE_CREATE_HELP)]
    Create(Box<ProfileCreate>),
    /// List profiles (masked: no token, secret or key).
    List {
        /// Only the profiles of this client.
        #[arg(long = "client", value_name = "CLIENT_ID", value_parser = id_arg)]
        client: Option<String>,
    },
    /// Show one profile (masked: auth_token_masked, never the token).
    Get {
        /// The profile id.
        #[arg(value_parser = id_arg)]
        id: String,
    },
    /// Issue a new auth token for a profile; prints it (shown this once).
    Refresh {
        /// The profile id.
        #[arg(value_parser = id_arg)]
        id: String,
        /// Seconds the old token keeps working (default 0: it stops at once).
        #[arg(long, value_name = "SECONDS")]
        grace_s: Option<u64>,
        /// Print only the new auth token and a newline (for scripts).
        #[arg(long)]
        token_only: bool,
    },
    /// Disable a profile: its token and JWTs are refused until it is enabled again.
    Disable {
        /// The profile id.
        #[arg(value_parser = id_arg)]
        id: String,
    },
    /// Enable a disabled profile.
    Enable {
        /// The profile id.
        #[arg(value_parser = id_arg)]
        id: String,
    },
    /// Delete a profile.
    Delete {
        /// The profile id.
        #[arg(value_parser = id_arg)]
        id: String,
    },
    /// Change a profile with the JSON in a file (PATCH: name, collections, auth, active,
    /// policy, ip_allow; an auth that omits secret or public_key keeps the current one).
    Patch {
        /// The profile id.
        #[arg(value_parser = id_arg)]
        id: String,
        /// JSON file with the members to change; - reads stdin.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
}

const PROFILE_CREATE_HELP: &str = "\
Exactly one of --token, --hs256-secret, --hs256-secret-file, --rs256-public-key-file.
Examples:
  TOKEN=$(tokengate profile create --client CID --name web --collection COL --token --token-only)
  tokengate profile create --client CID --name svc --collection COL \\
      --hs256-secret-file secret.txt --secret-is-base64 --required-claim exp --max-lifetime-s 3600
  tokengate profile create --client CID --name app --collection COL \\
      --rs256-public-key-file ~/.ssh/id_rsa.pub --rate-limit 100/1 --ip-allow 10.0.0.0/8";

/// How a profile authenticates.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct AuthChoice {
    /// Callers send the auth token itself (API-Token header).
    #[arg(long)]
    token: bool,
    /// Callers send HS256 JWTs signed with this shared secret (at least 32 bytes).
    #[arg(long, value_name = "SECRET")]
    hs256_secret: Option<String>,
    /// Like --hs256-secret, the secret read from a file (trailing CR/LF removed).
    #[arg(long, value_name = "FILE")]
    hs256_secret_file: Option<PathBuf>,
    /// Callers send RS256 JWTs; this file holds the public key (an OpenSSH ssh-rsa line, or a
    /// PEM PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE).
    #[arg(long, value_name = "FILE")]
    rs256_public_key_file: Option<PathBuf>,
}

/// Flags of `profile create`.
#[derive(Debug, Args)]
struct ProfileCreate {
    /// The client the profile belongs to.
    #[arg(long = "client", value_name = "CLIENT_ID", value_parser = id_arg)]
    client: String,
    /// Display name.
    #[arg(long, value_name = "NAME")]
    name: String,
    /// A collection the profile may call; repeat for more.
    #[arg(long = "collection", value_name = "COLLECTION_ID", value_parser = id_arg)]
    collections: Vec<String>,
    #[command(flatten)]
    auth: AuthChoice,
    /// The HS256 secret is standard base64 of the key bytes (e.g. `openssl rand -base64 32`).
    #[arg(long, conflicts_with_all = ["token", "rs256_public_key_file"])]
    secret_is_base64: bool,
    /// A claim every JWT must carry (exp, nbf, iat, iss, name, jti); repeat for more.
    #[arg(
        long = "required-claim",
        value_name = "CLAIM",
        conflicts_with = "token"
    )]
    required_claims: Vec<String>,
    /// Longest accepted JWT lifetime (exp - iat) in seconds.
    #[arg(long, value_name = "SECONDS", conflicts_with = "token")]
    max_lifetime_s: Option<u64>,
    /// An accepted `iss`; repeat for more (none given: any issuer).
    #[arg(long = "issuer", value_name = "ISS", conflicts_with = "token")]
    issuers: Vec<String>,
    /// Clock skew allowed on exp and nbf, in seconds.
    #[arg(long, value_name = "SECONDS", conflicts_with = "token")]
    leeway_s: Option<u64>,
    /// Rate limit as REQUESTS/SECONDS, e.g. 100/1 or 1000/60 (a bare N means N/1).
    #[arg(long, value_name = "N/S", value_parser = parse_rate_limit)]
    rate_limit: Option<Value>,
    /// A CIDR block callers must come from (e.g. 10.0.0.0/8 or 192.0.2.7); repeat for more.
    #[arg(long = "ip-allow", value_name = "CIDR")]
    ip_allow: Vec<String>,
    /// Print only the auth token and a newline (for scripts).
    #[arg(long)]
    token_only: bool,
}

/// Parses `N/S` (or `N`) into `{"requests":N,"per_s":S}`.
fn parse_rate_limit(text: &str) -> Result<Value, String> {
    let bad = || format!("{text:?} is not a rate like 100/1 (requests per seconds)");
    let (requests, per_s) = match text.trim().split_once('/') {
        Some((n, s)) => (n.trim(), s.trim()),
        None => (text.trim(), "1"),
    };
    let requests: u64 = requests.parse().map_err(|_| bad())?;
    let per_s: u64 = per_s.trim_end_matches('s').parse().map_err(|_| bad())?;
    if requests == 0 || per_s == 0 {
        return Err(format!("{text:?}: both numbers must be at least 1"));
    }
    Ok(json!({"requests": requests, "per_s": per_s}))
}

impl ProfileCreate {
    /// The request body.
    fn body(self) -> Result<Value, Failure> {
        let auth_choice = self.auth;
        let auth = if auth_choice.token {
            json!({"type": "token"})
        } else {
            let mut auth = Map::new();
            auth.insert("type".into(), json!("jwt"));
            if let Some(file) = &auth_choice.rs256_public_key_file {
                auth.insert("alg".into(), json!("RS256"));
                auth.insert("public_key".into(), json!(read_text_file(file)?));
            } else {
                let secret = match (auth_choice.hs256_secret, &auth_choice.hs256_secret_file) {
                    (Some(secret), _) => secret,
                    (None, Some(file)) => read_text_file(file)?
                        .trim_end_matches(['\r', '\n'])
                        .to_owned(),
                    (None, None) => {
                        return Err(Failure::usage(
                            "give one of --token, --hs256-secret, --hs256-secret-file, --rs256-public-key-file",
                        ))
                    }
                };
                auth.insert("alg".into(), json!("HS256"));
                auth.insert("secret".into(), json!(secret));
                auth.insert("secret_is_base64".into(), json!(self.secret_is_base64));
            }
            if !self.required_claims.is_empty() {
                auth.insert("required_claims".into(), json!(self.required_claims));
            }
            if let Some(max) = self.max_lifetime_s {
                auth.insert("max_lifetime_s".into(), json!(max));
            }
            if !self.issuers.is_empty() {
                auth.insert("allowed_issuers".into(), json!(self.issuers));
            }
            if let Some(leeway) = self.leeway_s {
                auth.insert("leeway_s".into(), json!(leeway));
            }
            Value::Object(auth)
        };
        let mut body = Map::new();
        body.insert("name".into(), json!(self.name));
        body.insert("collections".into(), json!(self.collections));
        body.insert("auth".into(), auth);
        if let Some(rate_limit) = self.rate_limit {
            body.insert("policy".into(), json!({ "rate_limit": rate_limit }));
        }
        if !self.ip_allow.is_empty() {
            body.insert("ip_allow".into(), json!(self.ip_allow));
        }
        Ok(Value::Object(body))
    }
}

/// Runs `tokengate profile …`.
pub fn run_profile(args: ProfileArgs) -> i32 {
    finish(profile(args))
}

fn profile(args: ProfileArgs) -> Result<Outcome, Failure> {
    let request = match args.command {
        ProfileCommand::Create(create) => {
            let path = format!("/v1/clients/{}/profiles", encode_component(&create.client));
            let token_only = create.token_only;
            Call::new(Method::POST, path)
                .body(create.body()?)
                .token_only(token_only)
        }
        ProfileCommand::List { client } => {
            let path = match client {
                Some(id) => format!("/v1/profiles?client_id={}", encode_component(&id)),
                None => "/v1/profiles".to_owned(),
            };
            Call::new(Method::GET, path)
        }
        ProfileCommand::Get { id } => Call::new(Method::GET, item("profiles", &id)),
        ProfileCommand::Refresh {
            id,
            grace_s,
            token_only,
        } => {
            let path = format!("{}/refresh", item("profiles", &id));
            let call = Call::new(Method::POST, path).token_only(token_only);
            match grace_s {
                Some(grace_s) => call.body(json!({ "grace_s": grace_s })),
                None => call,
            }
        }
        ProfileCommand::Disable { id } => {
            Call::new(Method::PATCH, item("profiles", &id)).body(json!({"active": false}))
        }
        ProfileCommand::Enable { id } => {
            Call::new(Method::PATCH, item("profiles", &id)).body(json!({"active": true}))
        }
        ProfileCommand::Delete { id } => {
            Call::new(Method::DELETE, item("profiles", &id)).deleted("profile", id)
        }
        ProfileCommand::Patch { id, file } => {
            Call::new(Method::PATCH, item("profiles", &id)).body(read_json_file(&file)?)
        }
    };
    request.send(&args.opts)
}

// ----- shared -----

/// `/v1/<kind>/<id>` with the id escaped.
fn item(kind: &str, id: &str) -> String {
    format!("/v1/{kind}/{}", encode_component(id))
}

/// One admin API call and how to show its answer.
struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
    token_only: bool,
    /// For a DELETE: what was deleted, for the note on stderr.
    deleted: Option<(&'static str, String)>,
}

/// What a successful command prints.
enum Outcome {
    /// Pretty JSON on stdout.
    Json(Value),
    /// One line on stdout (the auth token of `--token-only`).
    Line(String),
    /// A non-JSON body, as text.
    Text(String),
    /// Nothing on stdout; a note on stderr.
    Note(String),
}

impl Call {
    fn new(method: Method, path: String) -> Call {
        Call {
            method,
            path,
            body: None,
            token_only: false,
            deleted: None,
        }
    }

    fn body(mut self, body: Value) -> Call {
        self.body = Some(body);
        self
    }

    fn token_only(mut self, token_only: bool) -> Call {
        self.token_only = token_only;
        self
    }

    fn deleted(mut self, kind: &'static str, id: String) -> Call {
        self.deleted = Some((kind, id));
        self
    }

    /// Finds the key, sends the call and turns the answer into what to print.
    fn send(self, opts: &AdminOpts) -> Result<Outcome, Failure> {
        let base = BaseUrl::parse(&opts.admin_url).map_err(Failure::usage)?;
        let (key, origin) = load_admin_key(&opts.data_dir).map_err(Failure::failed)?;
        let client = AdminClient::new(base, key, origin).map_err(Failure::failed)?;
        let answer = client
            .call(self.method, &self.path, self.body.as_ref())
            .map_err(|e| Failure::failed(e.to_string()))?;
        if !answer.status.is_success() {
            return Err(Failure::failed(error_line(&client, &answer)));
        }
        if answer.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(match self.deleted {
                Some((kind, id)) => Outcome::Note(format!("deleted {kind} {id}")),
                None => Outcome::Note(format!("{} (no body)", answer.status)),
            });
        }
        let value: Value = match serde_json::from_slice(&answer.body) {
            Ok(value) => value,
            Err(_) => {
                return Ok(Outcome::Text(
                    String::from_utf8_lossy(&answer.body).into_owned(),
                ))
            }
        };
        if self.token_only {
            return match value.get("auth_token").and_then(Value::as_str) {
                Some(token) => Ok(Outcome::Line(token.to_owned())),
                None => Err(Failure::failed(
                    "the answer carries no auth_token".to_owned(),
                )),
            };
        }
        Ok(Outcome::Json(value))
    }
}

/// `<status> <code>: <message>` from an error answer, with a hint for 401.
fn error_line(client: &AdminClient, answer: &Answer) -> String {
    let status = answer.status.as_u16();
    let parsed: Option<Value> = serde_json::from_slice(&answer.body).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(Value::as_str);
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str);
    let mut line = match (code, message) {
        (Some(code), Some(message)) => format!("{status} {code}: {message}"),
        (Some(code), None) => format!("{status} {code}"),
        _ => {
            let reason = answer.status.canonical_reason().unwrap_or("error");
            let text = String::from_utf8_lossy(&answer.body);
            let text: String = text.trim().chars().take(200).collect();
            if text.is_empty() {
                format!("{status} {reason}")
            } else {
                format!("{status} {reason}: {text}")
            }
        }
    };
    if status == 401 {
        line.push_str(&format!(
            " (the admin key came from {}; it must match the server's at {})",
            client.key_origin(),
            client.base()
        ));
    }
    line
}

/// Prints an outcome or a failure and returns the exit code.
fn finish(result: Result<Outcome, Failure>) -> i32 {
    match result {
        Ok(outcome) => {
            let mut stdout = std::io::stdout().lock();
            let written = match outcome {
                Outcome::Json(value) => {
                    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
                    writeln!(stdout, "{text}")
                }
                Outcome::Line(line) | Outcome::Text(line) => writeln!(stdout, "{line}"),
                Outcome::Note(note) => {
                    eprintln!("{note}");
                    Ok(())
                }
            };
            match written.and_then(|()| stdout.flush()) {
                Ok(()) => 0,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
                Err(e) => {
                    eprintln!("error: cannot write the output: {e}");
                    1
                }
            }
        }
        Err(failure) => failure.report(),
    }
}

/// Reads a text file (`-`: stdin); the error names the file only.
fn read_text_file(path: &PathBuf) -> Result<String, Failure> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))
}

/// Reads a JSON file (`-`: stdin).
fn read_json_file(path: &PathBuf) -> Result<Value, Failure> {
    let text = read_text_file(path)?;
    serde_json::from_str(&text)
        .map_err(|e| Failure::usage(format!("{} is not valid JSON: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_specs() {
        assert_eq!(
            parse_endpoint("get /orders/:id http://127.0.0.1:9000/api").unwrap(),
            json!({"method":"GET","path":"/orders/:id","upstream":"http://127.0.0.1:9000/api"})
        );
        assert_eq!(
            parse_endpoint(r#"GET /hello {"status":200,"body":{"ok":true}}"#).unwrap(),
            json!({"method":"GET","path":"/hello","response":{"status":200,"body":{"ok":true}}})
        );
        assert!(parse_endpoint("GET /hello").is_err());
        assert!(parse_endpoint("GET hello http://x").is_err());
        assert!(parse_endpoint("GET /hello ftp://x").is_err());
        assert!(parse_endpoint("GET /hello {oops").is_err());
    }

    #[test]
    fn rate_limits() {
        assert_eq!(
            parse_rate_limit("100/1").unwrap(),
            json!({"requests":100,"per_s":1})
        );
        assert_eq!(
            parse_rate_limit("1000/60s").unwrap(),
            json!({"requests":1000,"per_s":60})
        );
        assert_eq!(
            parse_rate_limit("5").unwrap(),
            json!({"requests":5,"per_s":1})
        );
        assert!(parse_rate_limit("0/1").is_err());
        assert!(parse_rate_limit("x/1").is_err());
    }
}
