//! `loyalty run`: the whole pipeline, with a spinner per stage and each stage's peak memory.

use loyalty_pipeline::{Observer, Overrides, RunRequest};

use crate::cli::RunArgs;
use crate::settings::{data_options, engine_choice, resolve};

/// Spinners on a terminal, and the kernel's peak-RSS counter reset at each stage so
/// each stage reports its own peak (Linux >= 4.0: VmHWM after a write to clear_refs).
struct Progress(Option<indicatif::ProgressBar>);

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

impl Observer for Progress {
    fn stage_started(&mut self, name: &'static str, index: usize, total: usize) {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        self.0 = Some(crate::logging::stage_spinner(&format!("[{index}/{total}] {name}")));
    }

    fn stage_finished(&mut self, _: &'static str) -> Option<f64> {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
        peak_rss_mib()
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
    let outcome = loyalty_pipeline::run(request, &mut Progress(None))?;
    eprintln!("report: {}", outcome.target.join("report.html").display());
    Ok(())
}
