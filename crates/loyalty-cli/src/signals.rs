//! SIGINT and SIGTERM: the run is asked to stop (`loyalty_contract::cancel`), checks
//! the request between stages, partitions and chunks, unwinds and removes its staging
//! folder. A stage deep in a library call that does not return within
//! [`GRACE`] is not waited for: the watcher removes the staging folders, temporaries
//! and locks itself and exits. Either way `--out` is left as it was and the exit code
//! is 128 + the signal's number.

use std::io::Write;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM, SIGXFSZ};
use signal_hook::iterator::Signals;

/// How long a stop request waits for the run to unwind by itself.
const GRACE: Duration = Duration::from_secs(3);

/// The exit code of a run stopped by `signal` (130 for SIGINT, 143 for SIGTERM).
pub fn exit_code(signal: i32) -> u8 {
    (128 + signal).clamp(0, 255) as u8
}

/// The one line a stopped run prints.
pub fn stopped_line(signal: i32) -> String {
    let name = match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    };
    format!("stopped by {name}: nothing written, earlier outputs left as they were")
}

/// Install the handlers and the watcher thread.
pub fn install() -> std::io::Result<()> {
    // A write past `ulimit -f` fails with EFBIG (named in the error) instead of the
    // default SIGXFSZ action, which kills the process with no word.
    signal_hook::flag::register(SIGXFSZ, std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)))?;
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            loyalty_contract::cancel::request(signal);
            std::thread::sleep(GRACE);
            let _held = loyalty_io::output::abandon();
            let _ = writeln!(std::io::stderr(), "{}", stopped_line(signal));
            std::process::exit(i32::from(exit_code(signal)));
        }
    })?;
    Ok(())
}
