//! `tokengate collection …`: create, list, show, replace and delete collections.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use http::Method;
use serde_json::{json, Map, Value};

use super::admin_cmds::{finish, id_arg, item, read_json_file, AdminOpts, Call, Outcome};
use super::failure::Failure;

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
        CollectionCommand::List => Call::new(Method::GET, "/v1/collections".into()).paged(),
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
}
