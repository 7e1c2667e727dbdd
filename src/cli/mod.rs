//! The command line: `serve`, the admin API from the shell, `jwt sign`, `bench`.

pub(crate) mod admin_client;
mod admin_cmds;
mod client_cmd;
mod collection_cmd;
mod failure;
mod jwt_cmd;
mod profile_cmd;
mod serve;

use clap::{Parser, Subcommand};

/// tokengate — an API front door that checks the access token on every request.
#[derive(Debug, Parser)]
#[command(name = "tokengate", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
// Parsed once per process: the size of the `serve` variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the front door (data plane) and the admin API.
    Serve(serve::ServeArgs),
    /// Manage collections (groups of endpoints) through the admin API.
    Collection(collection_cmd::CollectionArgs),
    /// Manage clients (the callers' organisations) through the admin API.
    Client(client_cmd::ClientArgs),
    /// Manage access profiles (a client's token or JWT key and policy) through the admin API.
    Profile(profile_cmd::ProfileArgs),
    /// Sign JWTs as a client would.
    Jwt(jwt_cmd::JwtArgs),
    /// Benchmark an in-process front door with an in-process load generator.
    Bench(crate::tools::bench::BenchArgs),
}

/// Parses the command line and runs it; returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Collection(args) => collection_cmd::run_collection(args),
        Command::Client(args) => client_cmd::run_client(args),
        Command::Profile(args) => profile_cmd::run_profile(args),
        Command::Jwt(args) => jwt_cmd::run(args),
        Command::Bench(args) => crate::tools::bench::run(args),
    }
}
