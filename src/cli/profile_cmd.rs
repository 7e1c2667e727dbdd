//! `tokengate profile …`: create, list, show, change, refresh and delete access profiles.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use http::Method;
use serde_json::{json, Map, Value};

use super::admin_client::encode_component;
use super::admin_cmds::{
    finish, id_arg, item, read_json_file, read_text_file, AdminOpts, Call, Outcome,
};
use super::failure::Failure;
use crate::core::keys::{looks_like_private_key, PRIVATE_KEY_GIVEN};

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
    /// Share the rate limit among the live nodes (scope "cluster") instead of per node.
    #[arg(long, requires = "rate_limit")]
    cluster_rate_limit: bool,
    /// Request quota as REQUESTS/DAYS, e.g. 100000/30 (windows counted in UTC from the epoch).
    #[arg(long, value_name = "N/D", value_parser = parse_quota)]
    quota: Option<Value>,
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

/// Parses `N/D` (or `N/Dd`) into `{"requests":N,"per_days":D}`.
fn parse_quota(text: &str) -> Result<Value, String> {
    let bad = || format!("{text:?} is not a quota like 100000/30 (requests per days)");
    let (requests, days) = text.trim().split_once('/').ok_or_else(bad)?;
    let requests: u64 = requests.trim().parse().map_err(|_| bad())?;
    let days: u64 = days
        .trim()
        .trim_end_matches('d')
        .parse()
        .map_err(|_| bad())?;
    if requests == 0 || !(1..=366).contains(&days) {
        return Err(format!(
            "{text:?}: requests must be at least 1 and days 1 to 366"
        ));
    }
    Ok(json!({"requests": requests, "per_days": days}))
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
                let key = read_text_file(file)?;
                if looks_like_private_key(&key) {
                    return Err(Failure::usage(format!(
                        "--rs256-public-key-file {}: {}; nothing was sent",
                        file.display(),
                        PRIVATE_KEY_GIVEN
                    )));
                }
                auth.insert("public_key".into(), json!(key));
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
        let mut policy = Map::new();
        if let Some(mut rate_limit) = self.rate_limit {
            if self.cluster_rate_limit {
                rate_limit["scope"] = json!("cluster");
            }
            policy.insert("rate_limit".into(), rate_limit);
        }
        if let Some(quota) = self.quota {
            policy.insert("quota".into(), quota);
        }
        if !policy.is_empty() {
            body.insert("policy".into(), Value::Object(policy));
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
            Call::new(Method::GET, path).paged()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas() {
        assert_eq!(
            parse_quota("1000/30").unwrap(),
            json!({"requests": 1000, "per_days": 30})
        );
        assert_eq!(parse_quota("5/1d").unwrap()["per_days"], 1);
        assert!(parse_quota("5").is_err());
        assert!(parse_quota("5/367").is_err());
        assert!(parse_quota("0/1").is_err());
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
