//! The settings of a run, resolved once: the defaults (the `Default` impls here and
//! of [`FeatureParams`] and [`CurveParams`], the only place they are written), then a
//! TOML file (`--config`), then the environment and the flags ([`Overrides`]; the
//! binary lets a flag win over its environment variable). Every subcommand that reads
//! a dataset resolves its settings through [`resolve`]; run.json records the result.
//! `loyalty.example.toml` at the top of the repository documents every key.

use std::path::Path;

use chrono::NaiveDate;
use loyalty_features::curves::CurveParams;
use loyalty_features::{BillingEngine, FeatureParams, MarginBasis};
use loyalty_models::gbm::GbmParams;
use serde::{Deserialize, Serialize};

use crate::PipelineError;

fn bad(message: impl Into<String>) -> PipelineError {
    PipelineError::Settings(message.into())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Horizons, rates, competition bins (the feature stage's parameters; `as_of` here
    /// is the default T).
    pub model: FeatureParams,
    pub segments: SegmentConfig,
    pub curves: CurveParams,
    pub churn: ChurnConfig,
    pub output: OutputConfig,
    /// Churn reason codes by class, and the classes the win-back list leaves out.
    pub churn_reasons: loyalty_features::leavers::ReasonMap,
    /// Whether the file or a flag set `model.as_of` (else T is the end of the last
    /// billed month).
    #[serde(skip)]
    pub as_of_pinned: bool,
}

/// How high and low are split for the eight value segments, and the pyramid cut-offs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentConfig {
    /// `median`, `quantile` (at `quantile`) or `absolute` (at `ccv`, `cpv`, `loyalty`).
    pub split: String,
    pub quantile: f64,
    pub ccv: Option<f64>,
    pub cpv: Option<f64>,
    pub loyalty: Option<f64>,
    /// Shares of the base in platinum and in platinum + gold, by monthly margin.
    pub tier_shares: [f64; 2],
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self { split: "median".into(), quantile: 0.5, ccv: None, cpv: None, loyalty: None, tier_shares: [0.05, 0.20] }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChurnConfig {
    /// Boosting trees: the booster's cost is linear in them.
    pub trees: u32,
    /// Leaves per boosting tree.
    pub leaves: u32,
    /// Boosting learning rate (shrinkage of each tree).
    pub learning_rate: f64,
    /// Training snapshots, 3 months apart, before the out-of-time test snapshot.
    pub train_snapshots: u32,
    /// Boost on a uniform sample of at most this many training rows (0: all).
    pub max_train_rows: usize,
    /// The model that scores each plan type's customers: `auto` (the candidate with
    /// the higher out-of-time ROC AUC), `boosting` or `logistic` (L2, coefficients
    /// per standard deviation).
    pub classifier: Classifier,
    /// Folds of `loyalty churn evaluate`'s stratified cross-validation.
    pub folds: usize,
    /// Keep each plan type's out-of-time training and test rows in
    /// `ChurnFit::designs` (`loyalty churn train --designs-out`); not a file setting.
    #[serde(skip)]
    pub keep_designs: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Classifier {
    #[default]
    Auto,
    Boosting,
    Logistic,
}

impl Default for ChurnConfig {
    fn default() -> Self {
        let b = GbmParams::default();
        Self {
            trees: b.trees,
            leaves: b.leaves,
            learning_rate: b.learning_rate,
            train_snapshots: 3,
            max_train_rows: 400_000,
            classifier: Classifier::Auto,
            folds: 5,
            keep_designs: false,
        }
    }
}

impl ChurnConfig {
    /// The booster's settings.
    pub fn boosting(&self) -> GbmParams {
        GbmParams { trees: self.trees, leaves: self.leaves, learning_rate: self.learning_rate, ..GbmParams::default() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// The win-back list covers customers who left in this many months up to T.
    pub winback_months: u32,
    /// Rows of the win-back list shown in the report (the files have all of them).
    pub report_winback_rows: usize,
    /// Replace customer ids in every output with a keyed hash (key from the environment
    /// variable LOYALTY_PSEUDONYM_KEY).
    pub pseudonymize_ids: bool,
    /// The output folder of an earlier run to compare with (migration.csv).
    pub previous: Option<std::path::PathBuf>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self { winback_months: 12, report_winback_rows: 15, pseudonymize_ids: false, previous: None }
    }
}

impl SegmentConfig {
    pub fn split(&self) -> Result<loyalty_features::segments::Split, PipelineError> {
        use loyalty_features::segments::Split;
        match self.split.as_str() {
            "median" => Ok(Split::Quantile(0.5)),
            "quantile" if (0.0..=1.0).contains(&self.quantile) => Ok(Split::Quantile(self.quantile)),
            "quantile" => Err(bad("segments.quantile must be between 0 and 1")),
            "absolute" => match (self.ccv, self.cpv, self.loyalty) {
                (Some(a), Some(b), Some(c)) => Ok(Split::Absolute(a, b, c)),
                _ => Err(bad("segments.split = \"absolute\" needs segments.ccv, .cpv and .loyalty")),
            },
            other => Err(bad(format!("segments.split is `{other}`: use \"median\", \"quantile\" or \"absolute\""))),
        }
    }
}

impl RunConfig {
    /// Read a TOML file; unknown keys are an error (a typo must not be ignored).
    pub fn load(path: &Path) -> Result<RunConfig, PipelineError> {
        Self::parse(&loyalty_io::read_text(path)?, &path.display().to_string())
    }

    /// Parse TOML text (`source` names it in errors).
    pub fn parse(text: &str, source: &str) -> Result<RunConfig, PipelineError> {
        let bad = |e: toml::de::Error| bad(format!("config {source}: {e}"));
        let table: toml::Table = toml::from_str(text).map_err(bad)?;
        let as_of_pinned = table.get("model").and_then(|m| m.get("as_of")).is_some();
        let mut config: RunConfig = table.try_into().map_err(bad)?;
        config.as_of_pinned = as_of_pinned;
        Ok(config)
    }

    pub fn check(&self) -> Result<(), PipelineError> {
        self.model.check().map_err(|e| bad(e.to_string()))?;
        self.segments.split()?;
        let [a, b] = self.segments.tier_shares;
        if !(0.0 < a && a <= b && b <= 1.0) {
            return Err(bad("segments.tier_shares must be 0 < platinum <= platinum + gold <= 1"));
        }
        let [lo, hi] = self.curves.satisfaction_scale;
        if hi <= lo {
            return Err(bad("curves.satisfaction_scale must be [lowest, highest], lowest < highest"));
        }
        if self.churn.folds < 2 {
            return Err(bad("churn.folds must be at least 2"));
        }
        self.churn.boosting().check().map_err(|e| bad(format!("churn: {e}")))?;
        self.churn_reasons.check().map_err(|e| bad(format!("churn_reasons: {e}")))?;
        Ok(())
    }

    /// The horizon h of the churn labels and scores, in months.
    pub fn horizon(&self) -> u32 {
        self.model.churn_horizon_months
    }
}

/// Settings given in the environment or on the command line (None: keep the file's
/// value, or the default).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub as_of: Option<NaiveDate>,
    pub margin_rate: Option<f64>,
    pub discount_rate: Option<f64>,
    pub valuation_months: Option<u32>,
    pub horizon_months: Option<u32>,
    pub billing_engine: Option<BillingEngine>,
    pub margin_basis: Option<MarginBasis>,
    pub pseudonymize_ids: Option<bool>,
    pub trees: Option<u32>,
    pub train_snapshots: Option<u32>,
    pub max_train_rows: Option<usize>,
    pub folds: Option<usize>,
    pub previous: Option<std::path::PathBuf>,
}

fn set<T: Copy>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

/// The defaults, then `file`, then `overrides`; checked.
pub fn resolve(file: Option<&Path>, overrides: &Overrides) -> Result<RunConfig, PipelineError> {
    let mut cfg = match file {
        Some(path) => RunConfig::load(path)?,
        None => RunConfig::default(),
    };
    let o = overrides;
    if let Some(t) = o.as_of {
        cfg.model.as_of = t;
        cfg.as_of_pinned = true;
    }
    set(&mut cfg.model.margin_rate, o.margin_rate);
    set(&mut cfg.model.annual_discount_rate, o.discount_rate);
    set(&mut cfg.model.valuation_months, o.valuation_months);
    set(&mut cfg.model.churn_horizon_months, o.horizon_months);
    set(&mut cfg.model.billing_engine, o.billing_engine);
    set(&mut cfg.model.margin_basis, o.margin_basis);
    set(&mut cfg.output.pseudonymize_ids, o.pseudonymize_ids);
    set(&mut cfg.churn.trees, o.trees);
    set(&mut cfg.churn.train_snapshots, o.train_snapshots);
    set(&mut cfg.churn.max_train_rows, o.max_train_rows);
    set(&mut cfg.churn.folds, o.folds);
    if let Some(previous) = &o.previous {
        cfg.output.previous = Some(previous.clone());
    }
    cfg.check()?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../loyalty.example.toml");
        let c = RunConfig::load(&path).unwrap();
        c.check().unwrap();
        let d = RunConfig::default();
        assert_eq!(serde_json::to_value(&c.segments).unwrap(), serde_json::to_value(&d.segments).unwrap());
        assert_eq!(serde_json::to_value(&c.curves).unwrap(), serde_json::to_value(&d.curves).unwrap());
        assert_eq!(serde_json::to_value(c.churn).unwrap(), serde_json::to_value(d.churn).unwrap());
        assert_eq!(serde_json::to_value(&c.churn_reasons).unwrap(), serde_json::to_value(&d.churn_reasons).unwrap());
        assert_eq!(c.model.margin_basis, d.model.margin_basis);
        assert_eq!(c.model.churn_horizon_months, d.model.churn_horizon_months);
        assert_eq!(c.model.valuation_months, d.model.valuation_months);
        // the example leaves T to the data
        assert!(!c.as_of_pinned);
        let pinned = RunConfig::parse("[model]\nas_of = \"2024-06-30\"\n", "inline").unwrap();
        assert!(pinned.as_of_pinned);
        assert_eq!(pinned.model.as_of.to_string(), "2024-06-30");
    }

    #[test]
    fn flags_and_environment_override_the_file_which_overrides_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[model]\nchurn_horizon_months = 9\nmargin_rate = 0.4\n[churn]\nclassifier = \"logistic\"\n",
        )
        .unwrap();
        let none = resolve(None, &Overrides::default()).unwrap();
        assert_eq!(none.model.churn_horizon_months, 6);
        assert!(!none.as_of_pinned);
        let from_file = resolve(Some(&file), &Overrides::default()).unwrap();
        assert_eq!((from_file.model.churn_horizon_months, from_file.model.margin_rate), (9, 0.4));
        assert_eq!(from_file.churn.classifier, Classifier::Logistic);
        let t = NaiveDate::from_ymd_opt(2024, 3, 31).unwrap();
        let o = Overrides { horizon_months: Some(3), as_of: Some(t), folds: Some(4), ..Default::default() };
        let flagged = resolve(Some(&file), &o).unwrap();
        assert_eq!((flagged.model.churn_horizon_months, flagged.model.margin_rate), (3, 0.4));
        assert_eq!((flagged.model.as_of, flagged.as_of_pinned, flagged.churn.folds), (t, true, 4));
        let bad = Overrides { margin_rate: Some(2.0), ..Default::default() };
        assert!(matches!(resolve(None, &bad), Err(PipelineError::Settings(_))));
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        assert!(toml::from_str::<RunConfig>("[model]\nhorizon = 6\n").is_err());
        assert!(matches!(RunConfig::parse("[model]\nhorizon = 6\n", "x"), Err(PipelineError::Settings(_))));
        let c: RunConfig = toml::from_str("[segments]\nsplit = \"absolute\"\nccv = 1.0\n").unwrap();
        assert!(c.check().is_err());
        let c: RunConfig = toml::from_str("[model]\nmargin_rate = 1.5\n").unwrap();
        assert!(c.check().is_err());
        let twice = "[churn_reasons]\ncontrollable = [\"price\"]\ninvoluntary = [\" Price \"]\n";
        let err = toml::from_str::<RunConfig>(twice).unwrap().check().unwrap_err().to_string();
        assert!(err.contains("` Price ` is listed as both controllable and involuntary"), "{err}");
        let c: RunConfig = toml::from_str("[churn_reasons]\nwinback_excludes = [\"voluntary\"]\n").unwrap();
        assert!(c.check().unwrap_err().to_string().contains("winback_excludes holds `voluntary`"));
        let c: RunConfig = toml::from_str("[model]\nmargin_basis = \"collected\"\n").unwrap();
        assert_eq!(c.model.margin_basis, MarginBasis::Collected);
        assert!(toml::from_str::<RunConfig>("[model]\nmargin_basis = \"paid\"\n").is_err());
    }
}
