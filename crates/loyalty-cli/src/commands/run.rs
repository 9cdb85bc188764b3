//! `loyalty run`: the whole pipeline, with a spinner per stage and each stage's peak memory.

use loyalty_pipeline::{Observer, Overrides, RunRequest, StageUse};

use crate::cli::RunArgs;
use crate::settings::{data_options, engine_choice, resolve};

/// Spinners on a terminal, and the kernel's peak-RSS counter reset at each stage so
/// each stage reports its own peak (Linux >= 4.0: VmHWM after a write to clear_refs)
/// and what it started with, with the bytes read since the stage started (`rchar` of
/// /proc/self/io).
#[derive(Default)]
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    read_at_start: Option<u64>,
    rss_at_start: Option<f64>,
}

fn bytes_read() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines().find_map(|l| l.strip_prefix("rchar:")).and_then(|v| v.trim().parse().ok())
}

/// A memory figure of /proc/self/status (`VmHWM:`, `VmRSS:`), MiB.
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

impl Observer for Progress {
    fn stage_started(&mut self, name: &'static str, index: usize, total: usize) {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        self.rss_at_start = status_mib("VmRSS:");
        self.read_at_start = bytes_read();
        self.bar = Some(crate::logging::stage_spinner(&format!("[{index}/{total}] {name}")));
    }

    fn stage_finished(&mut self, _: &'static str) -> StageUse {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let read = bytes_read().zip(self.read_at_start.take()).map(|(now, then)| now.saturating_sub(then));
        let peak_rss_mib = status_mib("VmHWM:");
        StageUse {
            peak_rss_mib,
            // The kernel's resident counts lag by a few pages per thread, so a stage that
            // added nothing can read a start a few kB above its peak.
            start_rss_mib: self.rss_at_start.take().map(|start| peak_rss_mib.map_or(start, |peak| start.min(peak))),
            read_mib: read.map(|b| b as f64 / 1_048_576.0),
        }
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let pseudonymize = Overrides {
        pseudonymize_ids: args.pseudonymize_ids.then_some(true),
        previous: args.previous.clone(),
        ..Overrides::default()
    };
    let request = RunRequest {
        data: data_options(&args.data),
        out: args.out.clone(),
        config_file: args.settings.config.clone(),
        settings: resolve(&args.settings, pseudonymize)?,
        engine: engine_choice(&args.engine),
        command_line: std::env::args().collect(),
    };
    let outcome = loyalty_pipeline::run(request, &mut Progress::default())?;
    eprintln!("report: {}", outcome.target.join("report.html").display());
    Ok(())
}
