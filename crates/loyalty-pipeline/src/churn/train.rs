//! Fitting the classifiers on bounded samples and scoring a feature table with them.

use loyalty_models::churn::{Design, Logistic, Platt};
use loyalty_models::gbm::{Gbm, GbmParams};
use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::FeatureRows;
use super::snapshot::{Extra, Plan, design_of, model_rows};
use crate::error::Result;
use crate::settings::Classifier;
use loyalty_features::names as n;

/// A uniform, seeded sample of about `cap` of `n` rows (in order), or None when `n <= cap`:
/// boosting time grows with the rows, and a few hundred thousand rows are plenty for a
/// churn classifier. Uniform, so the calibration stays honest.
pub(crate) fn sample_rows(n: usize, cap: usize, seed: u64) -> Option<Vec<usize>> {
    if n <= cap || cap == 0 {
        return None;
    }
    let threshold = (cap as f64 / n as f64 * u64::MAX as f64) as u64;
    let splitmix = |i: u64| {
        let mut z = i.wrapping_add(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    Some((0..n).filter(|&i| splitmix(i as u64) < threshold).collect())
}

/// `d` and `y` cut to a uniform seeded sample of at most `cap` rows (0: all).
pub(crate) fn capped(d: Design, y: &[f64], cap: usize, seed: u64) -> (Design, Vec<f64>) {
    match sample_rows(d.rows, cap, seed) {
        None => (d, y.to_vec()),
        Some(rows) => (d.take(&rows), rows.iter().map(|&i| y[i]).collect()),
    }
}

/// The rows [`capped`] keeps for the same `cap` and `seed`, copied.
pub(crate) fn capped_copy(d: &Design, y: &[f64], cap: usize, seed: u64) -> (Design, Vec<f64>) {
    match sample_rows(d.rows, cap, seed) {
        None => (d.clone(), y.to_vec()),
        Some(rows) => (d.take(&rows), rows.iter().map(|&i| y[i]).collect()),
    }
}

/// `run` of every job, on every thread of the pool, each taking the costliest job not
/// yet taken; the results in the jobs' order. Taking the largest first keeps the
/// threads busy to the end, where splitting the list in halves can leave one thread
/// with the two largest jobs.
pub(crate) fn largest_first<J: Sync, R: Send>(
    jobs: &[J],
    cost: impl Fn(&J) -> usize,
    run: impl Fn(&J) -> R + Sync,
) -> Vec<R> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(cost(&jobs[k])));
    let next = AtomicUsize::new(0);
    let threads = rayon::current_num_threads().clamp(1, jobs.len().max(1));
    let taken: Vec<Vec<(usize, R)>> = (0..threads)
        .into_par_iter()
        .with_max_len(1)
        .map(|_| {
            let mut mine = Vec::new();
            while let Some(&k) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                mine.push((k, run(&jobs[k])));
            }
            mine
        })
        .collect();
    let mut done: Vec<(usize, R)> = taken.into_iter().flatten().collect();
    done.sort_by_key(|(k, _)| *k);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Boosting (on at most `max_rows` rows, sampled uniformly) as in [`fit_calibrated`].
pub(crate) fn fit_calibrated_sampled(
    d: &Design,
    y: &[f64],
    params: &GbmParams,
    max_rows: usize,
) -> Result<(Gbm, Platt)> {
    match sample_rows(d.rows, max_rows, 17) {
        None => fit_calibrated(d, y, params),
        Some(rows) => {
            tracing::info!("boosting on a uniform sample of {} of {} training rows", rows.len(), d.rows);
            let ys: Vec<f64> = rows.iter().map(|&i| y[i]).collect();
            fit_calibrated(&d.take(&rows), &ys, params)
        }
    }
}

/// Boosting on 80% of the rows, Platt calibration on the other 20% (a fixed split).
pub(crate) fn fit_calibrated(d: &Design, y: &[f64], params: &GbmParams) -> Result<(Gbm, Platt)> {
    let fit_rows: Vec<usize> = (0..d.rows).filter(|i| i % 5 != 4).collect();
    let cal_rows: Vec<usize> = (0..d.rows).filter(|i| i % 5 == 4).collect();
    let pick = |rows: &[usize]| rows.iter().map(|&i| y[i]).collect::<Vec<f64>>();
    let gbm = Gbm::fit_rows(d, &fit_rows, &pick(&fit_rows), params)?;
    let platt = Platt::fit(&gbm.predict(&d.take(&cal_rows)), &pick(&cal_rows));
    Ok((gbm, platt))
}

/// The model that scores one plan type's customers at T.
pub(crate) enum Fitted {
    Boosting(Box<Gbm>, Platt),
    Logistic(Logistic),
}

/// A feature's share of the model's importance.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureShare {
    pub feature: String,
    pub share: f32,
}

impl Fitted {
    pub(crate) fn fit(
        classifier: Classifier,
        d: &Design,
        y: &[f64],
        params: &GbmParams,
        max_rows: usize,
    ) -> Result<Self> {
        Ok(match classifier {
            Classifier::Boosting | Classifier::Auto => {
                let (gbm, platt) = fit_calibrated_sampled(d, y, params, max_rows)?;
                Fitted::Boosting(Box::new(gbm), platt)
            }
            Classifier::Logistic => Fitted::Logistic(Logistic::fit(d, y, 1.0)),
        })
    }

    /// P(churn) and the top three reasons of each row (joined by ", ").
    pub(crate) fn score(&self, d: &Design) -> (Vec<f64>, Vec<String>) {
        match self {
            Fitted::Boosting(gbm, platt) => {
                let (p, top) = gbm.predict_with_reasons(d, 3);
                let joined = top.iter().map(|t| t.iter().map(|&j| gbm.feature_name(j)).collect::<Vec<_>>().join(", "));
                (platt.apply(&p), joined.collect())
            }
            Fitted::Logistic(lr) => (lr.predict(d), lr.reasons(d, 3).iter().map(|r| r.join(", ")).collect()),
        }
    }

    /// The ten most important features: boosting's total-gain shares, or each
    /// standardised logistic coefficient's share of their absolute sum.
    pub(crate) fn importance(&self, names: &[String]) -> Vec<FeatureShare> {
        let mut shares: Vec<(String, f32)> = match self {
            Fitted::Boosting(gbm, _) => gbm.importance(),
            Fitted::Logistic(lr) => {
                let total: f64 = lr.coef.iter().map(|b| b.abs()).sum::<f64>().max(1e-300);
                names.iter().zip(&lr.coef).map(|(n, b)| (n.clone(), (b.abs() / total) as f32)).collect()
            }
        };
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        shares.truncate(10);
        shares.into_iter().map(|(feature, share)| FeatureShare { feature, share }).collect()
    }

    pub(crate) fn platt(&self) -> Option<Platt> {
        match self {
            Fitted::Boosting(_, platt) => Some(*platt),
            Fitted::Logistic(_) => None,
        }
    }
}

/// Customer ids, P(churn) and the top reasons of each (joined by ", ").
pub(crate) struct Scored {
    pub ids: Vec<i64>,
    pub p: Vec<f64>,
    pub reasons: StringChunked,
}

/// Rows of the feature table at T scored at a time: the design, the model's copies
/// and its per-feature contributions exist for one chunk only.
pub const SCORE_ROWS: usize = 200_000;

impl Scored {
    fn empty() -> Scored {
        let reasons = StringChunked::from_iter_values(n::CHURN_REASONS.into(), std::iter::empty::<&str>());
        Scored { ids: Vec::new(), p: Vec::new(), reasons }
    }
}

/// Each plan's customers of the feature table at T and their scores by that plan's
/// model, [`SCORE_ROWS`] rows of the table at a time (each chunk read once for every
/// plan). Each chunk's reasons are kept as one Arrow string array (at 10M customers a
/// `String` per reason took gigabytes).
pub(crate) fn score_at(
    features: &dyn FeatureRows,
    plans: &[(Plan, &[String], &Fitted)],
    extra: &Extra,
) -> Result<Vec<Scored>> {
    let mut out: Vec<Scored> = plans.iter().map(|_| Scored::empty()).collect();
    let height = features.in_memory().height();
    for start in (0..height).step_by(SCORE_ROWS) {
        loyalty_contract::cancel::check()?;
        let chunk = features.rows(start, SCORE_ROWS.min(height - start))?;
        for ((plan, names, model), scored) in plans.iter().zip(&mut out) {
            let rows = model_rows(chunk.clone().lazy(), *plan).collect()?;
            if rows.height() == 0 {
                continue;
            }
            let (chunk_ids, design) = design_of(&rows, names, extra)?;
            let (cp, cr) = model.score(&design);
            scored.ids.extend(chunk_ids);
            scored.p.extend(cp);
            scored.reasons.append_owned(StringChunked::from_iter_values(
                n::CHURN_REASONS.into(),
                cr.iter().map(String::as_str),
            ))?;
        }
        tracing::debug!("scored rows {start}..{} of {height}", start + SCORE_ROWS);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_largest_jobs_go_first_and_results_keep_the_jobs_order() {
        let jobs = [3usize, 9, 1, 7, 5];
        let started = std::sync::Mutex::new(Vec::new());
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let done = one.install(|| {
            super::largest_first(
                &jobs,
                |&j| j,
                |&j| {
                    started.lock().unwrap().push(j);
                    j * 10
                },
            )
        });
        assert_eq!(done, vec![30, 90, 10, 70, 50]);
        assert_eq!(started.into_inner().unwrap(), vec![9, 7, 5, 3, 1]);
        // on every thread of a bigger pool, each job still runs once
        let four = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        assert_eq!(four.install(|| super::largest_first(&jobs, |&j| j, |&j| j + 1)), vec![4, 10, 2, 8, 6]);
    }

    #[test]
    fn row_samples_are_uniform_and_seeded() {
        assert!(super::sample_rows(1_000, 1_000, 1).is_none());
        let s = super::sample_rows(1_000_000, 100_000, 1).unwrap();
        assert!((s.len() as f64 - 100_000.0).abs() < 1_500.0, "{}", s.len());
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        // as many in each half: uniform over the rows
        let first_half = s.iter().filter(|&&i| i < 500_000).count() as f64;
        assert!((first_half / s.len() as f64 - 0.5).abs() < 0.01);
        assert_eq!(super::sample_rows(1_000_000, 100_000, 1), Some(s));
    }
}
