//! `tokengate collection|client|profile …`: the admin API from the shell; what the three share
//! (where the API is, one call and its printed outcome). Each resource has its own file:
//! [`super::collection_cmd`], [`super::client_cmd`], [`super::profile_cmd`].
//!
//! Every command prints the answer's JSON body, pretty, on stdout and exits 0 on a 2xx answer
//! (a `DELETE` answers 204 with no body: nothing is printed on stdout). An error answer prints
//! `error: <status> <code>: <message>` on stderr and exits 1; so does a connection failure or a
//! missing admin key. Bad arguments exit 2. The admin key is never printed.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::Args;
use http::Method;
use serde_json::Value;

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
pub(super) fn id_arg(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        Err("an id must not be empty".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

// ----- collection -----

/// `/v1/<kind>/<id>` with the id escaped.
pub(super) fn item(kind: &str, id: &str) -> String {
    format!("/v1/{kind}/{}", encode_component(id))
}

/// One admin API call and how to show its answer.
pub(super) struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
    token_only: bool,
    /// For a DELETE: what was deleted, for the note on stderr.
    deleted: Option<(&'static str, String)>,
    /// A list call: follow `next` until the last page and print every item.
    paged: bool,
}

/// What a successful command prints.
pub(super) enum Outcome {
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
    pub(super) fn new(method: Method, path: String) -> Call {
        Call {
            method,
            path,
            body: None,
            token_only: false,
            deleted: None,
            paged: false,
        }
    }

    /// Marks a list call: [`Call::send`] asks for pages of 1000 and follows `next`.
    pub(super) fn paged(mut self) -> Call {
        self.paged = true;
        self
    }

    pub(super) fn body(mut self, body: Value) -> Call {
        self.body = Some(body);
        self
    }

    pub(super) fn token_only(mut self, token_only: bool) -> Call {
        self.token_only = token_only;
        self
    }

    pub(super) fn deleted(mut self, kind: &'static str, id: String) -> Call {
        self.deleted = Some((kind, id));
        self
    }

    /// Finds the key, sends the call and turns the answer into what to print.
    pub(super) fn send(self, opts: &AdminOpts) -> Result<Outcome, Failure> {
        let base = BaseUrl::parse(&opts.admin_url).map_err(Failure::usage)?;
        let (key, origin) = load_admin_key(&opts.data_dir).map_err(Failure::failed)?;
        let client = AdminClient::new(base, key, origin).map_err(Failure::failed)?;
        if self.paged {
            return list_all(&client, &self.path).map(Outcome::Json);
        }
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

/// Every item of a list call: pages of 1000, following `next` until it is `null`. Prints as one
/// page would: `{"items":[…],"next":null}`.
fn list_all(client: &AdminClient, path: &str) -> Result<Value, Failure> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page_path = match &after {
            Some(id) => format!("{path}{separator}limit=1000&after={}", encode_component(id)),
            None => format!("{path}{separator}limit=1000"),
        };
        let answer = client
            .call(Method::GET, &page_path, None)
            .map_err(|e| Failure::failed(e.to_string()))?;
        if !answer.status.is_success() {
            return Err(Failure::failed(error_line(client, &answer)));
        }
        let page: Value = serde_json::from_slice(&answer.body)
            .map_err(|_| Failure::failed("the answer to a list call is not JSON".to_owned()))?;
        let Some(page_items) = page.get("items").and_then(Value::as_array) else {
            return Err(Failure::failed(
                "the answer to a list call has no items".to_owned(),
            ));
        };
        items.extend(page_items.iter().cloned());
        match page.get("next").and_then(Value::as_str) {
            Some(next) if after.as_deref() != Some(next) => after = Some(next.to_owned()),
            _ => break,
        }
    }
    Ok(serde_json::json!({ "items": items, "next": null }))
}

/// `<status> <code>: <message>` from an error answer, with a hint for 401.
pub(super) fn error_line(client: &AdminClient, answer: &Answer) -> String {
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
pub(super) fn finish(result: Result<Outcome, Failure>) -> i32 {
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
pub(super) fn read_text_file(path: &PathBuf) -> Result<String, Failure> {
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
pub(super) fn read_json_file(path: &PathBuf) -> Result<Value, Failure> {
    let text = read_text_file(path)?;
    serde_json::from_str(&text)
        .map_err(|e| Failure::usage(format!("{} is not valid JSON: {e}", path.display())))
}
