//! `loyalty fit`: customer-base models by maximum likelihood, as a table or JSON.

use std::io::Write;

use loyalty_pipeline::dataset::{DataOptions, default_as_of, load_validated};
use loyalty_pipeline::fit::{self, FitReport, Kind, Period, SbgOptions, SbgSource, TxOptions, TxSource};

use crate::cli::{FitArgs, FitModel, Format, KmArgs, SbgArgs, TxFitArgs};
use crate::settings::data_options;

pub fn run(args: FitArgs) -> anyhow::Result<()> {
    match args.model {
        FitModel::Sbg(a) => sbg(a),
        FitModel::Bgnbd(a) => transactions(a, Kind::BgNbd),
        FitModel::ParetoNbd(a) => transactions(a, Kind::ParetoNbd),
        FitModel::GammaGamma(a) => transactions(a, Kind::GammaGamma),
        FitModel::Km(a) => kaplan_meier(a),
    }
}

fn print(r: &FitReport, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => super::print_json(r),
        Format::Human => Ok(write!(std::io::stdout(), "{}", loyalty_pipeline::text::fit_report(r))?),
    }
}

fn kaplan_meier(a: KmArgs) -> anyhow::Result<()> {
    if let Some(path) = &a.out {
        loyalty_io::check_output_file(path, &[&a.data.data])?;
    }
    let v = load_validated(&data_options(&a.data))?;
    let as_of = match a.as_of {
        Some(d) => d,
        None => default_as_of(&v)?,
    };
    let by = a.by.as_deref().unwrap_or(fit::KM_DEFAULT_BY);
    let (mut table, summary) = fit::kaplan_meier(&v, as_of, by)?;
    if let Some(path) = &a.out {
        loyalty_io::write_table_atomic(&mut table, path)?;
    }
    match a.format {
        Format::Json => super::print_json(&summary),
        Format::Human => Ok(write!(std::io::stdout(), "{}", loyalty_pipeline::text::km_summary(&summary))?),
    }
}

fn sbg(a: SbgArgs) -> anyhow::Result<()> {
    let source = match &a.data {
        None => SbgSource::Counts(vec![fit::parse_survivors(&a.survivors)?]),
        Some(dir) => SbgSource::Dataset {
            data: DataOptions::strict(dir.clone()),
            contract_months: a.contract_months,
            as_of: a.as_of,
        },
    };
    let d = SbgOptions::default();
    let opts = SbgOptions {
        discount: a.discount.unwrap_or(d.discount),
        renewals: a.renewals.unwrap_or(d.renewals),
        project: a.project,
    };
    print(&fit::fit_sbg(source, &opts)?, a.format)
}

fn transactions(a: TxFitArgs, kind: Kind) -> anyhow::Result<()> {
    if let Some(path) = &a.out {
        let inputs: Vec<&std::path::Path> = a.data.iter().chain(&a.summary).map(|p| p.as_path()).collect();
        loyalty_io::check_output_file(path, &inputs)?;
    }
    let source = match (&a.summary, &a.data) {
        (Some(path), _) => TxSource::Summary(path.clone()),
        (None, Some(dir)) => TxSource::Dataset {
            data: DataOptions { data: dir.clone(), lenient: a.lenient, skip_validation: a.skip_validation },
            calibration_end: a.calibration_end,
        },
        (None, None) => anyhow::bail!("give --data or --summary"),
    };
    let d = TxOptions::default();
    let opts = TxOptions {
        period: a.period.map_or(d.period, |p| match p {
            crate::cli::Period::Day => Period::Day,
            crate::cli::Period::Week => Period::Week,
            crate::cli::Period::Month => Period::Month,
        }),
        horizon: a.horizon.unwrap_or(d.horizon),
        clv_months: a.clv_months.unwrap_or(d.clv_months),
        discount_rate: a.discount_rate.unwrap_or(d.discount_rate),
        margin_rate: a.margin_rate.unwrap_or(d.margin_rate),
    };
    let mut fitted = fit::fit_transactions(kind, source, &opts)?;
    if let Some(path) = &a.out {
        loyalty_io::write_table_atomic(&mut fitted.customers, path)?;
    }
    print(&fitted.report, a.format)
}
