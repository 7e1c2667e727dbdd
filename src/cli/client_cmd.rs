//! `tokengate client …`: create, list, show, enable, disable, rotate the portal key of, and
//! delete clients.

use clap::{Args, Subcommand};
use http::Method;
use serde_json::json;

use super::admin_cmds::{finish, id_arg, item, AdminOpts, Call};

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
    /// Give a client a new portal key (prints the new portal URL); the old URL stops working.
    RotatePortalKey {
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
        ClientCommand::List => Call::new(Method::GET, "/v1/clients".into()).paged(),
        ClientCommand::Get { id } => Call::new(Method::GET, item("clients", &id)),
        ClientCommand::Disable { id } => {
            Call::new(Method::PATCH, item("clients", &id)).body(json!({"active": false}))
        }
        ClientCommand::Enable { id } => {
            Call::new(Method::PATCH, item("clients", &id)).body(json!({"active": true}))
        }
        ClientCommand::RotatePortalKey { id } => {
            Call::new(Method::POST, format!("{}/portal-key", item("clients", &id)))
        }
        ClientCommand::Delete { id } => {
            Call::new(Method::DELETE, item("clients", &id)).deleted("client", id)
        }
    };
    finish(request.send(&args.opts))
}

// ----- profile -----
