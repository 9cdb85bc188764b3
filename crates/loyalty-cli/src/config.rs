//! The run's configuration: a TOML file (`--config`), overridden by flags and
//! environment variables, resolved into one value that run.json records.
//! `loyalty.example.toml` at the top of the repository documents every key.

use std::path::Path;

use loyalty_features::FeatureParams;
use loyalty_features::curves::CurveParams;
use serde::{Deserialize, Serialize};

use crate::InputRejected;

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
    /// Whether the file set `model.as_of` (else T is the end of the last billed month).
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
    /// Gradient boosting budget (perpetual).
    pub budget: f32,
    /// Training snapshots, 3 months apart, before the out-of-time test snapshot.
    pub train_snapshots: u32,
    /// Boost on a uniform sample of at most this many training rows (0: all).
    pub max_train_rows: usize,
    /// The model that scores postpaid customers: gradient boosting (the default; the
    /// booster is not bit-for-bit reproducible from run to run) or the L2 logistic
    /// regression (reproducible, coefficients per standard deviation).
    pub classifier: Classifier,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Classifier {
    #[default]
    Boosting,
    Logistic,
}

impl Default for ChurnConfig {
    fn default() -> Self {
        Self { budget: 1.0, train_snapshots: 3, max_train_rows: 400_000, classifier: Classifier::Boosting }
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
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self { winback_months: 12, report_winback_rows: 15, pseudonymize_ids: false }
    }
}

impl SegmentConfig {
    pub fn split(&self) -> anyhow::Result<loyalty_features::segments::Split> {
        use loyalty_features::segments::Split;
        match self.split.as_str() {
            "median" => Ok(Split::Quantile(0.5)),
            "quantile" if (0.0..=1.0).contains(&self.quantile) => Ok(Split::Quantile(self.quantile)),
            "quantile" => Err(InputRejected("segments.quantile must be between 0 and 1".into()).into()),
            "absolute" => match (self.ccv, self.cpv, self.loyalty) {
                (Some(a), Some(b), Some(c)) => Ok(Split::Absolute(a, b, c)),
                _ => {
                    Err(InputRejected("segments.split = \"absolute\" needs segments.ccv, .cpv and .loyalty".into())
                        .into())
                }
            },
            other => {
                Err(InputRejected(format!("segments.split is `{other}`: use \"median\", \"quantile\" or \"absolute\""))
                    .into())
            }
        }
    }
}

impl RunConfig {
    /// Read a TOML file; unknown keys are an error (a typo must not be ignored).
    pub fn load(path: &Path) -> anyhow::Result<RunConfig> {
        Self::parse(&loyalty_io::read_text(path)?, &path.display().to_string())
    }

    /// Parse TOML text (`source` names it in errors).
    pub fn parse(text: &str, source: &str) -> anyhow::Result<RunConfig> {
        let bad = |e: toml::de::Error| InputRejected(format!("config {source}: {e}"));
        let table: toml::Table = toml::from_str(text).map_err(bad)?;
        let as_of_pinned = table.get("model").and_then(|m| m.get("as_of")).is_some();
        let mut config: RunConfig = table.try_into().map_err(bad)?;
        config.as_of_pinned = as_of_pinned;
        Ok(config)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        self.model.check().map_err(|e| InputRejected(e.to_string()))?;
        self.segments.split()?;
        let [a, b] = self.segments.tier_shares;
        if !(0.0 < a && a <= b && b <= 1.0) {
            return Err(
                InputRejected("segments.tier_shares must be 0 < platinum <= platinum + gold <= 1".into()).into()
            );
        }
        let [lo, hi] = self.curves.satisfaction_scale;
        if hi <= lo {
            return Err(
                InputRejected("curves.satisfaction_scale must be [lowest, highest], lowest < highest".into()).into()
            );
        }
        Ok(())
    }
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
        assert_eq!(c.model.churn_horizon_months, d.model.churn_horizon_months);
        assert_eq!(c.model.valuation_months, d.model.valuation_months);
        // the example leaves T to the data
        assert!(!c.as_of_pinned);
        let pinned = RunConfig::parse("[model]\nas_of = \"2024-06-30\"\n", "inline").unwrap();
        assert!(pinned.as_of_pinned);
        assert_eq!(pinned.model.as_of.to_string(), "2024-06-30");
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        assert!(toml::from_str::<RunConfig>("[model]\nhorizon = 6\n").is_err());
        let c: RunConfig = toml::from_str("[segments]\nsplit = \"absolute\"\nccv = 1.0\n").unwrap();
        assert!(c.check().is_err());
        let c: RunConfig = toml::from_str("[model]\nmargin_rate = 1.5\n").unwrap();
        assert!(c.check().is_err());
    }
}
