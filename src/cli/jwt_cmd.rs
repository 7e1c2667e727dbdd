//! `tokengate jwt sign`: makes a JWT the way a client does (like the JWT.IO page), for trying a profile out.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use super::failure::Failure;
use crate::core::keys::HmacKey;
use crate::tools::jwt_sign::{client_claims, parse_lifetime, SigningKey};
use crate::tools::signing::RsaSigningKey;

/// `tokengate jwt …`.
#[derive(Debug, Args)]
pub struct JwtArgs {
    #[command(subcommand)]
    command: JwtCommand,
}

/// The jwt subcommands.
#[derive(Debug, Subcommand)]
enum JwtCommand {
    /// Sign a JWT for a profile and print it (one line).
    #[command(after_help = SIGN_HELP)]
    Sign(SignArgs),
}

const SIGN_HELP: &str = "\
Claims: sub = --sub, name = --name, iat = now, exp = now + --exp (when given), then every
--claim in order (a --claim may override any of them, e.g. --claim exp=1 for an expired token).
Examples:
  tokengate jwt sign --sub \"$TOKEN\" --name Ann --secret-file secret.txt --exp 1h
  tokengate jwt sign --sub \"$TOKEN\" --name Ann --key ~/.ssh/id_rsa --claim iss=me --claim jti=42
  curl -H \"Authorization: Bearer $(tokengate jwt sign …)\" http://127.0.0.1:8080/shop/orders/1";

/// The signing key: exactly one of these.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct KeySource {
    /// HS256 shared secret, as pasted in the profile.
    #[arg(long, value_name = "SECRET")]
    secret: Option<String>,
    /// HS256 shared secret read from a file (its text with trailing CR/LF removed).
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// RS256 private key file: OpenSSH (as `ssh-keygen -t rsa` writes, without passphrase),
    /// or PEM PKCS#1 (RSA PRIVATE KEY) or PKCS#8 (PRIVATE KEY).
    #[arg(long, value_name = "PRIVATE_KEY_FILE")]
    key: Option<PathBuf>,
}

/// The JWS algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Alg {
    /// HMAC-SHA256 with a shared secret.
    #[value(name = "HS256")]
    Hs256,
    /// RSA PKCS#1 v1.5 with SHA-256.
    #[value(name = "RS256")]
    Rs256,
}

/// Flags of `jwt sign`.
#[derive(Debug, Args)]
struct SignArgs {
    /// The `sub` claim: the profile's auth token.
    #[arg(long, value_name = "AUTH_TOKEN")]
    sub: String,
    /// The `name` claim: the caller's display name.
    #[arg(long, value_name = "NAME")]
    name: String,
    #[command(flatten)]
    key: KeySource,
    /// The algorithm (default: HS256 with a secret, RS256 with --key).
    #[arg(long, value_enum, ignore_case = true)]
    alg: Option<Alg>,
    /// Lifetime: exp = now + this (90, 90s, 15m, 1h, 7d); without it there is no exp.
    #[arg(long, value_name = "DURATION", value_parser = lifetime_arg)]
    exp: Option<i64>,
    /// An extra claim K=V; V is taken as JSON when it parses (42, true, {"a":1}),
    /// else as a string. Repeat for more.
    #[arg(long = "claim", value_name = "K=V", value_parser = claim_arg)]
    claims: Vec<(String, Value)>,
    /// The secret is standard base64 of the key bytes (as the profile's secret_is_base64).
    #[arg(long, conflicts_with = "key")]
    secret_is_base64: bool,
}

fn lifetime_arg(text: &str) -> Result<i64, String> {
    parse_lifetime(text)
}

/// Parses `K=V`; V as JSON when it parses, else the string.
fn claim_arg(text: &str) -> Result<(String, Value), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("{text:?} is not K=V"));
    };
    if key.is_empty() {
        return Err(format!("{text:?} has an empty claim name"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((key.to_owned(), value))
}

/// Runs `tokengate jwt …`.
pub fn run(args: JwtArgs) -> i32 {
    match args.command {
        JwtCommand::Sign(sign_args) => match sign(sign_args) {
            Ok(token) => {
                println!("{token}");
                0
            }
            Err(failure) => failure.report(),
        },
    }
}

fn sign(args: SignArgs) -> Result<String, Failure> {
    let key = signing_key(&args.key, args.alg, args.secret_is_base64)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .map_err(|_| Failure::failed("the system clock is before 1970"))?;
    let mut claims = client_claims(&args.sub, Some(&args.name), now, args.exp);
    for (name, value) in args.claims {
        claims.insert(name, value);
    }
    key.sign(&claims)
        .map_err(|e| Failure::failed(format!("cannot sign: {e}")))
}

/// Builds the key from the flags; errors name files and formats, never secret or key material.
fn signing_key(
    source: &KeySource,
    alg: Option<Alg>,
    secret_is_base64: bool,
) -> Result<SigningKey, Failure> {
    if let Some(path) = &source.key {
        if alg == Some(Alg::Hs256) {
            return Err(Failure::usage(
                "--alg HS256 needs --secret or --secret-file; --key signs RS256",
            ));
        }
        let text = read_file(path, "key")?;
        if looks_public(&text) {
            return Err(Failure::failed(format!(
                "{} is a public key; --key takes the private key (e.g. id_rsa, not id_rsa.pub)",
                path.display()
            )));
        }
        let key = RsaSigningKey::parse(&text)
            .map_err(|e| Failure::failed(format!("{}: {e}", path.display())))?;
        return Ok(SigningKey::Rs256(key));
    }
    if alg == Some(Alg::Rs256) {
        return Err(Failure::usage(
            "--alg RS256 needs --key PRIVATE_KEY_FILE; --secret and --secret-file sign HS256",
        ));
    }
    let (secret, origin) = match (&source.secret, &source.secret_file) {
        (Some(secret), _) => (secret.clone(), "--secret".to_owned()),
        (None, Some(path)) => {
            let text = read_file(path, "secret")?;
            (
                text.trim_end_matches(['\r', '\n']).to_owned(),
                path.display().to_string(),
            )
        }
        (None, None) => {
            return Err(Failure::usage(
                "give one of --secret, --secret-file or --key",
            ))
        }
    };
    let key = HmacKey::from_secret(&secret, secret_is_base64)
        .map_err(|e| Failure::failed(format!("{origin}: {e}")))?;
    Ok(SigningKey::Hs256(key))
}

/// Whether a key file holds a public key (a common mix-up: `id_rsa.pub` for `id_rsa`).
fn looks_public(text: &str) -> bool {
    let text = text.trim_start();
    text.starts_with("ssh-rsa ")
        || text.starts_with("-----BEGIN PUBLIC KEY-----")
        || text.starts_with("-----BEGIN RSA PUBLIC KEY-----")
        || text.starts_with("-----BEGIN CERTIFICATE-----")
}

/// Reads a key or secret file; the error names the file, never its contents.
fn read_file(path: &Path, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
        Failure::failed(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_parse_as_json_or_string() {
        assert_eq!(claim_arg("n=42").unwrap(), ("n".into(), json!(42)));
        assert_eq!(claim_arg("b=true").unwrap(), ("b".into(), json!(true)));
        assert_eq!(
            claim_arg("o={\"a\":1}").unwrap(),
            ("o".into(), json!({"a":1}))
        );
        assert_eq!(claim_arg("iss=me").unwrap(), ("iss".into(), json!("me")));
        assert_eq!(claim_arg("e=").unwrap(), ("e".into(), json!("")));
        assert_eq!(claim_arg("u=a=b").unwrap(), ("u".into(), json!("a=b")));
        assert!(claim_arg("=x").is_err());
        assert!(claim_arg("x").is_err());
    }
}
