//! `callvault`: the service and its operator tools. See `callvault --help`.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: sled allocates and frees for
/// every insert, and under glibc malloc a read-model rebuild spent about a
/// third of its time in the allocator (BENCHMARKS.md, "Read models").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = callvault::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: can't start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(callvault::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
