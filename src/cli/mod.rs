//! The command line: `serve`, the admin API from the shell, `jwt sign`, `bench`.

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
pub enum Command {
    /// Run the front door (data plane) and the admin API.
    Serve(serve::ServeArgs),
    /// Benchmark an in-process front door with an in-process load generator.
    Bench(crate::bench::BenchArgs),
}

/// Parses the command line and runs it; returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Bench(args) => crate::bench::run(args),
    }
}
