//! The `loyalty` binary. Exit codes: 0 ok, 1 the input failed validation, 2 usage or
//! internal error.

mod cli;
mod commands;
mod config;
mod logging;
mod panics;
mod report;
mod signals;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use loyalty_contract::ContractError;
use loyalty_io::IoError;

// Polars allocates and frees large buffers all the time; jemalloc (as python-polars
// uses on Linux) is faster than the system allocator at it and returns memory.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The input broke the contract; the message says where and how.
#[derive(Debug)]
pub struct InputRejected(pub String);

impl std::fmt::Display for InputRejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputRejected {}

fn is_bad_input(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<InputRejected>().is_some()
            || e.downcast_ref::<IoError>().is_some_and(IoError::is_bad_input)
            || matches!(e.downcast_ref::<ContractError>(), Some(ContractError::Schema(_)))
    })
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(&cli.global);
    panics::install();
    if let Err(e) = signals::install() {
        eprintln!("error: cannot install the SIGINT/SIGTERM handlers: {e}");
        return ExitCode::from(2);
    }
    let result = commands::run(cli);
    // A stop request explains whatever error the unwinding produced.
    if let (Err(_), Some(signal)) = (&result, loyalty_contract::cancel::requested()) {
        eprintln!("{}", signals::stopped_line(signal));
        return ExitCode::from(signals::exit_code(signal));
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {err}");
            for cause in err.chain().skip(1) {
                let _ = writeln!(stderr, "  caused by: {cause}");
            }
            if is_bad_input(&err) { ExitCode::from(1) } else { ExitCode::from(2) }
        }
    }
}
