//! `loyalty features`: the per-customer feature table as of T.

use std::collections::HashMap;
use std::path::Path;

use loyalty_contract::{Validated, col as c};
use loyalty_features::{FeatureError, FeatureParams, names as n};
use polars::prelude::*;

use crate::PipelineError;
use crate::error::{Context, Result};

/// How much of the feature stage to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// Every feature, value and the survival curves.
    #[default]
    All,
    /// Only the streaming per-customer aggregates (no scores, CPV, CLV).
    Aggregates,
}

/// customer_id -> `p_churn_<h>m` from a `loyalty churn train --out` file.
fn read_churn_scores(path: &Path, h: u32) -> Result<HashMap<i64, f64>> {
    let column = n::p_churn(h);
    let bad = |why: String| PipelineError::Data(format!("churn scores {}: {why}", path.display()));
    if !path.is_file() {
        return Err(bad("no such file".into()));
    }
    let df = LazyFrame::scan_parquet(PlRefPath::new(path.to_string_lossy().as_ref()), ScanArgsParquet::default())
        .and_then(|lf| {
            lf.select([col(c::CUSTOMER_ID).cast(DataType::Int64), col(column.as_str()).cast(DataType::Float64)])
                .collect()
        })
        .map_err(|e| bad(format!("needs columns customer_id and {column} (the churn horizon is {h} months): {e}")))?;
    let ids = df.column(c::CUSTOMER_ID)?.i64()?;
    let p = df.column(&column)?.f64()?;
    Ok(ids.iter().zip(p.iter()).filter_map(|(i, p)| Some((i?, p?))).collect())
}

/// The features of the customers of `v` active at `params.as_of`, through the survival
/// curves, from the first bill month the validation found (a scan of the bills when
/// it found none).
pub(crate) fn features_at_t(v: &Validated, params: &FeatureParams) -> std::result::Result<DataFrame, FeatureError> {
    let first_bill = crate::dataset::summarised_first_bill_month(v);
    let mut at_t = loyalty_features::customer_features_with(&v.tables, params, first_bill, Ok::<_, FeatureError>)?;
    loyalty_features::with_survival(&mut at_t.table, params, &at_t.curves)?;
    Ok(at_t.table)
}

/// The feature table of the customers active at `params.as_of`; CLV from the churn
/// scores in `churn_scores` for the customers they cover, else from the survival curves.
pub fn feature_table(
    v: &Validated,
    params: &FeatureParams,
    stage: Stage,
    churn_scores: Option<&Path>,
) -> Result<DataFrame> {
    let computing = "computing features";
    Ok(match (stage, churn_scores) {
        (Stage::All, Some(path)) => {
            let scores = read_churn_scores(path, params.churn_horizon_months)?;
            loyalty_features::customer_features_with_churn_scores(&v.tables, params, &scores).during(computing)?.0
        }
        (Stage::All, None) => features_at_t(v, params).during(computing)?,
        (Stage::Aggregates, _) => loyalty_features::customer_aggregates(&v.tables, params).during(computing)?,
    })
}
