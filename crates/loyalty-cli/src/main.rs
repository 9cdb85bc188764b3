//! The `loyalty` binary: parse the command line, resolve the settings, call
//! `loyalty_pipeline`, print, and map the outcome to an exit code ([`exit_code`]).

mod cli;
mod commands;
mod defaults;
mod logging;
mod panics;
mod settings;
mod signals;

use std::io::Write;
use std::process::ExitCode;

use clap::FromArgMatches;
use loyalty_pipeline::PipelineError;

// Polars allocates and frees large buffers all the time; jemalloc (as python-polars
// uses on Linux) is faster than the system allocator at it and returns memory.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (before `main`): freed pages go back to the
/// system after about three seconds, by a background thread, where jemalloc's
/// default keeps them for ten. A stage frees a column as it writes its next one, and
/// kept freed pages counted towards the peak: at 10M customers the features stage
/// peaked at 3.8-3.9 GiB with the defaults and at 3.0 GiB with these (2.97 GiB with
/// one second, whose page faults on memory taken again cost more time); at 3M the
/// run at 1.59 GiB and at 1.39 GiB. `_RJEM_MALLOC_CONF` in the environment still
/// overrides them.
// SAFETY: a NUL-terminated string with a 'static lifetime under the name jemalloc
// (built with the `_rjem_` prefix) reads it by; nothing writes it.
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_OPTIONS: &[u8; 60] = b"background_thread:true,dirty_decay_ms:3000,muzzy_decay_ms:0\0";

/// jemalloc's pages kept after a free, handed back to the system now: what
/// `loyalty_contract::memory::release` does in this binary.
fn purge_jemalloc() {
    // SAFETY: "arena.<MALLCTL_ARENAS_ALL>.purge" (4096) is a NUL-terminated name of a
    // void control that reads and writes nothing: no old or new value is passed.
    #[allow(unsafe_code)]
    unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}

/// The exit code of a failed command: 1 when the input or a setting is at fault
/// (the user fixes the data or the configuration), 2 for everything else (usage,
/// the machine, a bug). clap exits 2 itself on a command line it cannot parse, and a
/// stop request exits 128 + the signal before this is asked.
fn exit_code(err: &anyhow::Error) -> u8 {
    let bad_input = err.chain().any(|e| {
        e.downcast_ref::<PipelineError>().is_some_and(PipelineError::is_bad_input)
            || e.downcast_ref::<loyalty_io::IoError>().is_some_and(loyalty_io::IoError::is_bad_input)
    });
    if bad_input { 1 } else { 2 }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

fn main() -> ExitCode {
    let matches = defaults::command().get_matches();
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    logging::init(&cli.global);
    loyalty_contract::memory::set_release(purge_jemalloc);
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
            ExitCode::from(exit_code(&err))
        }
    }
}
