//! The `tokengate` binary: a thin shell over the library.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    std::process::exit(tokengate::cli::run());
}
