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
use loyalty_contract::ahead::made_ahead;
use loyalty_contract::labels::texts;
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
    /// As text held once per distinct value (`labels::texts`): a string a row took
    /// 0.3 GB at 10M customers.
    pub reasons: Series,
}

/// Rows of the feature table at T scored at a time: the design, the model's copies
/// and its per-feature contributions exist for one chunk only.
pub const SCORE_ROWS: usize = 200_000;

impl Scored {
    fn empty() -> Scored {
        let reasons = Series::new_empty(n::CHURN_REASONS.into(), &texts());
        Scored { ids: Vec::new(), p: Vec::new(), reasons }
    }
}

/// The customers of the feature table at T that the plans' models score.
pub(crate) struct ScoredAtT {
    /// Every scored customer in the table's order (by customer_id, as the table is):
    /// the scores table needs no sort, which copied every column at once (the reasons
    /// about 0.5 GB at 10M customers).
    pub all: Scored,
    /// Each plan's P(churn) of its customers, for its report.
    pub by_plan: Vec<Vec<f64>>,
}

/// Every plan's customers of the feature table at T and their scores by that plan's
/// model, [`SCORE_ROWS`] rows of the table at a time (each chunk read once for every
/// plan). Each chunk's reasons are kept as one Arrow string array (at 10M customers a
/// `String` per reason took gigabytes). The next chunk is read and its designs built
/// while one is scored ([`made_ahead`]).
pub(crate) fn score_at(
    features: &dyn FeatureRows,
    plans: &[(Plan, &[String], &Fitted)],
    extra: &Extra,
) -> Result<ScoredAtT> {
    let mut all = Scored::empty();
    let mut by_plan: Vec<Vec<f64>> = vec![Vec::new(); plans.len()];
    let height = features.in_memory().height();
    made_ahead(
        (0..height).step_by(SCORE_ROWS),
        |start| -> Result<_> {
            Ok((start, designs_of(features, plans, extra, start, SCORE_ROWS.min(height - start))?))
        },
        |(start, designs)| {
            loyalty_contract::cancel::check()?;
            let mut parts = Vec::with_capacity(plans.len());
            for (k, chunk_ids, design) in designs {
                let (cp, cr) = plans[k].2.score(&design);
                by_plan[k].extend_from_slice(&cp);
                parts.push((chunk_ids, cp, cr));
            }
            append_by_id(&mut all, &parts)?;
            // The chunk's designs and contributions are freed.
            drop(parts);
            loyalty_contract::memory::release();
            tracing::debug!("scored rows {start}..{} of {height}", (start + SCORE_ROWS).min(height));
            Ok(())
        },
    )?;
    Ok(ScoredAtT { all, by_plan })
}

/// Rows `start..start + len` of the feature table: each plan's customers among them
/// (its index in `plans`, their ids and their design), plans without one left out.
fn designs_of(
    features: &dyn FeatureRows,
    plans: &[(Plan, &[String], &Fitted)],
    extra: &Extra,
    start: usize,
    len: usize,
) -> Result<Vec<(usize, Vec<i64>, Design)>> {
    let chunk = features.rows(start, len)?;
    let mut designs = Vec::with_capacity(plans.len());
    for (k, (plan, names, _)) in plans.iter().enumerate() {
        let rows = model_rows(chunk.clone().lazy(), *plan).collect()?;
        if rows.height() == 0 {
            continue;
        }
        let (ids, design) = design_of(&rows, names, extra)?;
        designs.push((k, ids, design));
    }
    Ok(designs)
}

/// One chunk's scores of each plan, (ids, P(churn), reasons) with ids ascending,
/// appended to `all` merged into one ascending run of ids: the chunk's order.
fn append_by_id(all: &mut Scored, parts: &[(Vec<i64>, Vec<f64>, Vec<String>)]) -> Result<()> {
    let total: usize = parts.iter().map(|part| part.0.len()).sum();
    let mut next = vec![0usize; parts.len()];
    let mut reasons: Vec<&str> = Vec::with_capacity(total);
    all.ids.reserve(total);
    all.p.reserve(total);
    while let Some(k) = (0..parts.len()).filter(|&k| next[k] < parts[k].0.len()).min_by_key(|&k| parts[k].0[next[k]]) {
        let (ids, p, why) = &parts[k];
        let i = next[k];
        all.ids.push(ids[i]);
        all.p.push(p[i]);
        reasons.push(&why[i]);
        next[k] += 1;
    }
    let reasons = StringChunked::from_iter_values(n::CHURN_REASONS.into(), reasons.into_iter());
    all.reasons.append_owned(reasons.into_series().cast(&texts())?)?;
    Ok(())
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
    fn the_plans_scores_of_a_chunk_are_appended_in_id_order() {
        let part = |ids: &[i64], p: &[f64]| {
            (ids.to_vec(), p.to_vec(), ids.iter().map(|id| format!("why {id}")).collect::<Vec<_>>())
        };
        let mut all = super::Scored::empty();
        // two chunks: the plans' customers interleave, and a plan may have none in one
        super::append_by_id(&mut all, &[part(&[2, 5, 6], &[0.2, 0.5, 0.6]), part(&[1, 3, 9], &[0.1, 0.3, 0.9])])
            .unwrap();
        super::append_by_id(&mut all, &[part(&[12], &[0.12]), part(&[], &[])]).unwrap();
        assert_eq!(all.ids, [1, 2, 3, 5, 6, 9, 12]);
        assert_eq!(all.p, [0.1, 0.2, 0.3, 0.5, 0.6, 0.9, 0.12]);
        let why = all.reasons.cast(&polars::prelude::DataType::String).unwrap();
        let why: Vec<&str> = why.str().unwrap().iter().map(Option::unwrap).collect();
        assert_eq!(why, ["why 1", "why 2", "why 3", "why 5", "why 6", "why 9", "why 12"]);
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
