//! `loyalty import`: public datasets into the contract.

use anyhow::Context;
use loyalty_io::import::{cdnow, mlc_churn, wa_churn};
use tracing::info;

use crate::cli::{ImportArgs, ImportSource};

pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    match args.source {
        ImportSource::Cdnow(a) => {
            let bytes = std::fs::read(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
            let log = cdnow::parse(&bytes, &a.input).map_err(loyalty_io::IoError::from)?;
            let (tables, free) = cdnow::tables(&log).context("building the contract tables")?;
            let staged = loyalty_io::OutputDir::begin(&a.out)?;
            for (name, mut df) in tables {
                loyalty_io::write_parquet(&mut df, &staged.path().join(format!("{name}.parquet")))?;
            }
            let out = staged.commit()?;
            info!(
                "imported {} purchase lines ({:?} layout) into {}; {free} line(s) of $0.00 kept out of top-ups",
                log.purchases.len(),
                log.layout,
                out.display()
            );
            Ok(())
        }
        ImportSource::WaChurn(a) => {
            let bytes = std::fs::read(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
            let subs = wa_churn::parse(&bytes, &a.input).map_err(loyalty_io::IoError::from)?;
            let tables = wa_churn::tables(&subs).context("building the contract tables")?;
            let staged = loyalty_io::OutputDir::begin(&a.out)?;
            for (name, mut df) in tables {
                loyalty_io::write_parquet(&mut df, &staged.path().join(format!("{name}.parquet")))?;
            }
            let out = staged.commit()?;
            let (y, m, d) = wa_churn::SNAPSHOT;
            info!(
                "imported {} subscribers ({} churned) into {}, as a snapshot at {y}-{m:02}-{d:02}",
                subs.len(),
                subs.iter().filter(|s| s.churn).count(),
                out.display()
            );
            Ok(())
        }
        ImportSource::MlcChurn(a) => {
            let bytes = std::fs::read(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
            let subs = mlc_churn::parse(&bytes, &a.input).map_err(loyalty_io::IoError::from)?;
            let tables = mlc_churn::tables(&subs).context("building the contract tables")?;
            let staged = loyalty_io::OutputDir::begin(&a.out)?;
            for (name, mut df) in tables {
                loyalty_io::write_parquet(&mut df, &staged.path().join(format!("{name}.parquet")))?;
            }
            let out = staged.commit()?;
            let (y, m, d) = mlc_churn::SNAPSHOT;
            info!(
                "imported {} subscribers ({} churned) into {}, as a snapshot at {y}-{m:02}-{d:02}",
                subs.len(),
                subs.iter().filter(|s| s.churn).count(),
                out.display()
            );
            Ok(())
        }
    }
}
