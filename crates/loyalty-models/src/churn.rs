//! Churn classifiers and their evaluation: the design matrix, a ridge-regularised
//! logistic regression baseline, Platt calibration, and ROC AUC, top-decile lift,
//! Brier score and a calibration table. Gradient boosting is in [`crate::gbm`].

use rayon::prelude::*;

use crate::ModelError;
use serde::Serialize;

/// A design matrix: one vector per feature (NaN = missing), all of `rows` values.
#[derive(Debug, Clone)]
pub struct Design {
    pub names: Vec<String>,
    pub columns: Vec<Vec<f64>>,
    pub rows: usize,
}

impl Design {
    pub fn new(names: Vec<String>, columns: Vec<Vec<f64>>) -> Result<Self, ModelError> {
        let rows = columns.first().map_or(0, Vec::len);
        if names.len() != columns.len() || columns.iter().any(|c| c.len() != rows) {
            return Err(ModelError::BadInput("design: every feature needs a name and the same number of rows".into()));
        }
        Ok(Design { names, columns, rows })
    }

    /// The rows `idx`, in that order.
    pub fn take(&self, idx: &[usize]) -> Design {
        Design {
            names: self.names.clone(),
            columns: self.columns.iter().map(|c| idx.iter().map(|&i| c[i]).collect()).collect(),
            rows: idx.len(),
        }
    }

    /// Rows of `other` below these (same features).
    pub fn append(&mut self, other: &Design) {
        for (c, o) in self.columns.iter_mut().zip(&other.columns) {
            c.extend_from_slice(o);
        }
        self.rows += other.rows;
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    (p / (1.0 - p)).ln()
}

/// Solve A x = b (A symmetric positive definite, small) by Cholesky.
fn solve_spd(a: &[Vec<f64>], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = a[i][i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i][j] = d.sqrt();
            } else {
                l[i][j] = (a[i][j] - s) / l[j][j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - (i + 1..n).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    Some(x)
}

/// Logistic regression with an L2 penalty on standardised features (missing values
/// imputed with the training mean), fitted by Newton's method.
#[derive(Debug, Clone, Serialize)]
pub struct Logistic {
    pub names: Vec<String>,
    pub means: Vec<f64>,
    pub sds: Vec<f64>,
    pub intercept: f64,
    /// Coefficients on the standardised features.
    pub coef: Vec<f64>,
}

impl Logistic {
    pub fn fit(d: &Design, y: &[f64], l2: f64) -> Logistic {
        let p = d.columns.len();
        let mut means = Vec::with_capacity(p);
        let mut sds = Vec::with_capacity(p);
        for c in &d.columns {
            let known: Vec<f64> = c.iter().copied().filter(|v| v.is_finite()).collect();
            let m = if known.is_empty() { 0.0 } else { known.iter().sum::<f64>() / known.len() as f64 };
            let var = if known.len() > 1 {
                known.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (known.len() - 1) as f64
            } else {
                0.0
            };
            means.push(m);
            sds.push(if var > 1e-24 { var.sqrt() } else { 1.0 });
        }
        let mut model = Logistic { names: d.names.clone(), means, sds, intercept: 0.0, coef: vec![0.0; p] };
        let z = model.standardise(d);
        let rate = y.iter().sum::<f64>() / y.len().max(1) as f64;
        model.intercept = logit(rate);
        for _ in 0..50 {
            // gradient and Hessian of the penalised negative log-likelihood, over chunks
            // Per chunk, then summed in chunk order: a fixed order of float additions,
            // so the fit is the same to the last bit whatever the thread count.
            let parts: Vec<(Vec<f64>, Vec<Vec<f64>>)> = z
                .par_chunks(4_096 * (p + 1))
                .enumerate()
                .map(|(k, chunk)| {
                    let start = k * 4_096;
                    let mut g = vec![0.0; p + 1];
                    let mut h = vec![vec![0.0; p + 1]; p + 1];
                    for (r, row) in chunk.chunks(p + 1).enumerate() {
                        let eta: f64 =
                            model.intercept + row[1..].iter().zip(&model.coef).map(|(x, b)| x * b).sum::<f64>();
                        let mu = sigmoid(eta);
                        let w = (mu * (1.0 - mu)).max(1e-12);
                        let e = mu - y[start + r];
                        // The lower triangle, a line at a time: w * row[i] * row[j] is
                        // (w * row[i]) * row[j], so the line's factor is taken once, and
                        // the cells of a line are independent sums the compiler can
                        // update side by side.
                        for (i, (line, &xi)) in h.iter_mut().zip(row).enumerate() {
                            g[i] += e * xi;
                            let wi = w * xi;
                            for (cell, &xj) in line[..=i].iter_mut().zip(row) {
                                *cell += wi * xj;
                            }
                        }
                    }
                    (g, h)
                })
                .collect();
            let (grad, hess) = parts.into_iter().fold(
                (vec![0.0; p + 1], vec![vec![0.0; p + 1]; p + 1]),
                |(mut g1, mut h1), (g2, h2)| {
                    for i in 0..=p {
                        g1[i] += g2[i];
                        for j in 0..=p {
                            h1[i][j] += h2[i][j];
                        }
                    }
                    (g1, h1)
                },
            );
            let mut h = hess;
            let mut g = grad;
            for (i, b) in model.coef.iter().enumerate() {
                g[i + 1] += l2 * b;
                h[i + 1][i + 1] += l2;
            }
            for i in 0..=p {
                let (upper, lower) = h.split_at_mut(i);
                for (j, row) in upper.iter_mut().enumerate() {
                    row[i] = lower[0][j];
                }
            }
            let Some(step) = solve_spd(&h, &g) else { break };
            model.intercept -= step[0];
            for i in 0..p {
                model.coef[i] -= step[i + 1];
            }
            if step.iter().map(|s| s.abs()).fold(0.0, f64::max) < 1e-8 {
                break;
            }
        }
        model
    }

    /// Per row, the names of up to `k` features that raise the churn score most:
    /// the largest positive terms coef_j * z_j (a missing value sits at the mean: 0).
    pub fn reasons(&self, d: &Design, k: usize) -> Vec<Vec<String>> {
        let p = d.columns.len();
        self.standardise(d)
            .chunks(p + 1)
            .map(|row| {
                let terms: Vec<f64> = row[1..].iter().zip(&self.coef).map(|(z, b)| z * b).collect();
                let mut idx: Vec<usize> = (0..p).filter(|&j| terms[j] > 0.0).collect();
                idx.sort_by(|&a, &b| terms[b].total_cmp(&terms[a]));
                idx.into_iter().take(k).map(|j| self.names[j].clone()).collect()
            })
            .collect()
    }

    /// Row-major [1, z_1, ..., z_p] per row.
    fn standardise(&self, d: &Design) -> Vec<f64> {
        let p = d.columns.len();
        let mut z = vec![0.0; d.rows * (p + 1)];
        for r in 0..d.rows {
            z[r * (p + 1)] = 1.0;
        }
        for (j, c) in d.columns.iter().enumerate() {
            for (r, v) in c.iter().enumerate() {
                let v = if v.is_finite() { *v } else { self.means[j] };
                z[r * (p + 1) + j + 1] = (v - self.means[j]) / self.sds[j];
            }
        }
        z
    }

    /// Standard errors of the coefficients (on the standardised features) from the
    /// inverse Fisher information at the fit; meaningful for an unpenalised fit.
    pub fn std_errors(&self, d: &Design) -> Vec<f64> {
        let p = self.coef.len();
        let z = self.standardise(d);
        let mut info = vec![vec![0.0; p + 1]; p + 1];
        for row in z.chunks(p + 1) {
            let mu = sigmoid(self.intercept + row[1..].iter().zip(&self.coef).map(|(x, b)| x * b).sum::<f64>());
            let w = mu * (1.0 - mu);
            for (line, xi) in info.iter_mut().zip(row) {
                for (cell, xj) in line.iter_mut().zip(row) {
                    *cell += w * xi * xj;
                }
            }
        }
        match crate::optimize::invert(info) {
            Some(inv) => (1..=p).map(|i| if inv[i][i] > 0.0 { inv[i][i].sqrt() } else { f64::NAN }).collect(),
            None => vec![f64::NAN; p],
        }
    }

    pub fn predict(&self, d: &Design) -> Vec<f64> {
        let p = self.coef.len();
        let z = self.standardise(d);
        z.chunks(p + 1)
            .map(|row| sigmoid(self.intercept + row[1..].iter().zip(&self.coef).map(|(x, b)| x * b).sum::<f64>()))
            .collect()
    }
}

/// Ordinary least squares of `y` on standardised columns (complete rows only): the
/// change in `y` per standard deviation of each column, with classical standard errors.
pub fn ols_standardised(columns: &[Vec<f64>], y: &[f64]) -> Option<(Vec<f64>, Vec<f64>, usize)> {
    let p = columns.len();
    let rows: Vec<usize> =
        (0..y.len()).filter(|&i| y[i].is_finite() && columns.iter().all(|c| c[i].is_finite())).collect();
    let n = rows.len();
    if n <= p + 1 {
        return None;
    }
    let mut stats = Vec::with_capacity(p);
    for c in columns {
        let m = rows.iter().map(|&i| c[i]).sum::<f64>() / n as f64;
        let v = rows.iter().map(|&i| (c[i] - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        stats.push((m, if v > 1e-24 { v.sqrt() } else { 1.0 }));
    }
    let x = |i: usize, j: usize| if j == 0 { 1.0 } else { (columns[j - 1][i] - stats[j - 1].0) / stats[j - 1].1 };
    let mut xtx = vec![vec![0.0; p + 1]; p + 1];
    let mut xty = vec![0.0; p + 1];
    for &i in &rows {
        let row: Vec<f64> = (0..=p).map(|a| x(i, a)).collect();
        for (a, xa) in row.iter().enumerate() {
            xty[a] += xa * y[i];
            for (cell, xb) in xtx[a].iter_mut().zip(&row) {
                *cell += xa * xb;
            }
        }
    }
    let inv = crate::optimize::invert(xtx)?;
    let beta: Vec<f64> = (0..=p).map(|a| (0..=p).map(|b| inv[a][b] * xty[b]).sum()).collect();
    let rss: f64 = rows.iter().map(|&i| (y[i] - (0..=p).map(|a| beta[a] * x(i, a)).sum::<f64>()).powi(2)).sum();
    let sigma2 = rss / (n - p - 1) as f64;
    let se = (1..=p).map(|a| (sigma2 * inv[a][a]).max(0.0).sqrt()).collect();
    Some((beta[1..].to_vec(), se, n))
}

/// Platt scaling: p = σ(a · logit(score) + b), fitted by Newton's method on held-out rows.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

impl Platt {
    pub fn fit(scores: &[f64], y: &[f64]) -> Platt {
        let x: Vec<f64> = scores.iter().map(|s| logit(*s)).collect();
        let nll = |a: f64, b: f64| -> f64 {
            x.iter()
                .zip(y)
                .map(|(x, t)| {
                    let z = a * x + b;
                    // log(1 + e^z) - t z, stably
                    (if z > 0.0 { z + (-z).exp().ln_1p() } else { z.exp().ln_1p() }) - t * z
                })
                .sum()
        };
        let (mut a, mut b) = (1.0, 0.0);
        let mut current = nll(a, b);
        for _ in 0..100 {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
            for (x, t) in x.iter().zip(y) {
                let mu = sigmoid(a * x + b);
                let w = mu * (1.0 - mu);
                ga += (mu - t) * x;
                gb += mu - t;
                haa += w * x * x;
                hab += w * x;
                hbb += w;
            }
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-300 {
                break;
            }
            let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
            // Newton step, halved until the likelihood improves.
            let mut step = 1.0;
            let mut moved = false;
            for _ in 0..40 {
                let candidate = nll(a - step * da, b - step * db);
                if candidate <= current {
                    a -= step * da;
                    b -= step * db;
                    current = candidate;
                    moved = true;
                    break;
                }
                step /= 2.0;
            }
            if !moved || (step * da).abs().max((step * db).abs()) < 1e-10 {
                break;
            }
        }
        Platt { a, b }
    }

    pub fn apply(&self, scores: &[f64]) -> Vec<f64> {
        scores.iter().map(|s| sigmoid(self.a * logit(*s) + self.b)).collect()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CalibrationBin {
    pub bin: usize,
    pub customers: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub customers: usize,
    pub churners: usize,
    pub base_rate: f64,
    pub roc_auc: f64,
    pub top_decile_lift: f64,
    pub brier: f64,
    pub calibration: Vec<CalibrationBin>,
}

/// The ROC curve at up to `points` thresholds (quantiles of the scores), from (0, 0)
/// to (1, 1): [false positive rate, true positive rate].
pub fn roc_curve(p: &[f64], y: &[f64], points: usize) -> Vec<[f64; 2]> {
    let pos = y.iter().filter(|v| **v > 0.5).count() as f64;
    let neg = y.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Vec::new();
    }
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let mut out = vec![[0.0, 0.0]];
    let (mut tp, mut fp) = (0.0, 0.0);
    let step = (idx.len() / points.max(1)).max(1);
    for (k, &i) in idx.iter().enumerate() {
        if y[i] > 0.5 {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_tie = k + 1 == idx.len() || p[idx[k + 1]] != p[i];
        if last_of_tie && ((k + 1) % step == 0 || k + 1 == idx.len()) {
            out.push([fp / neg, tp / pos]);
        }
    }
    if out.last() != Some(&[1.0, 1.0]) {
        out.push([1.0, 1.0]);
    }
    out
}

/// Cumulative gains: after targeting the top `k/points` of customers by score, the share
/// of all churners reached: [share targeted, share of churners]. Lift is their ratio.
pub fn gains_curve(p: &[f64], y: &[f64], points: usize) -> Vec<[f64; 2]> {
    let total: f64 = y.iter().sum();
    if total <= 0.0 || p.is_empty() {
        return Vec::new();
    }
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let mut out = vec![[0.0, 0.0]];
    let mut caught = 0.0;
    let mut next = 1;
    for (k, &i) in idx.iter().enumerate() {
        caught += y[i];
        while next <= points && (k + 1) as f64 >= next as f64 / points as f64 * idx.len() as f64 {
            out.push([(k + 1) as f64 / idx.len() as f64, caught / total]);
            next += 1;
        }
    }
    out
}

/// ROC AUC by ranks (ties share their average rank); NaN without both classes.
pub fn roc_auc(p: &[f64], y: &[f64]) -> f64 {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut ranks = vec![0.0; p.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && p[idx[j + 1]] == p[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[idx[k]] = avg;
        }
        i = j + 1;
    }
    let n1 = y.iter().filter(|t| **t > 0.5).count() as f64;
    let n0 = y.len() as f64 - n1;
    if n1 == 0.0 || n0 == 0.0 {
        return f64::NAN;
    }
    let r1: f64 = ranks.iter().zip(y).filter(|(_, t)| **t > 0.5).map(|(r, _)| r).sum();
    (r1 - n1 * (n1 + 1.0) / 2.0) / (n1 * n0)
}

/// Every metric of predictions `p` against outcomes `y` (0/1).
pub fn evaluate(p: &[f64], y: &[f64]) -> Metrics {
    let n = p.len();
    let churners = y.iter().filter(|t| **t > 0.5).count();
    let base_rate = churners as f64 / n.max(1) as f64;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let top = (n / 10).max(1).min(n);
    let top_rate = idx[..top].iter().filter(|&&i| y[i] > 0.5).count() as f64 / top as f64;
    let brier = p.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / n.max(1) as f64;
    // Ten bins of equal size by predicted probability, lowest first.
    idx.reverse();
    let calibration = (0..10)
        .filter_map(|b| {
            let (lo, hi) = (b * n / 10, (b + 1) * n / 10);
            (hi > lo).then(|| {
                let rows = &idx[lo..hi];
                CalibrationBin {
                    bin: b + 1,
                    customers: rows.len(),
                    mean_predicted: rows.iter().map(|&i| p[i]).sum::<f64>() / rows.len() as f64,
                    observed_rate: rows.iter().filter(|&&i| y[i] > 0.5).count() as f64 / rows.len() as f64,
                }
            })
        })
        .collect();
    Metrics {
        customers: n,
        churners,
        base_rate,
        roc_auc: roc_auc(p, y),
        top_decile_lift: if base_rate > 0.0 { top_rate / base_rate } else { f64::NAN },
        brier,
        calibration,
    }
}

/// Fold (0..k) of every row, stratified by the outcome, shuffled with `seed`.
pub fn stratified_folds(y: &[f64], k: usize, seed: u64) -> Vec<usize> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut folds = vec![0; y.len()];
    for class in [false, true] {
        let mut rows: Vec<usize> = (0..y.len()).filter(|&i| (y[i] > 0.5) == class).collect();
        for i in (1..rows.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            rows.swap(i, j);
        }
        for (n, &r) in rows.iter().enumerate() {
            folds[r] = n % k;
        }
    }
    folds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ordered_pairs_and_ties() {
        // positives 0.9, 0.4; negatives 0.5, 0.1 -> pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) = 3/4
        assert!((roc_auc(&[0.9, 0.4, 0.5, 0.1], &[1.0, 1.0, 0.0, 0.0]) - 0.75).abs() < 1e-12);
        // a tie counts one half
        assert!((roc_auc(&[0.5, 0.5], &[1.0, 0.0]) - 0.5).abs() < 1e-12);
        assert!(roc_auc(&[0.1, 0.2], &[0.0, 0.0]).is_nan());
    }

    #[test]
    fn metrics_of_a_hand_made_case() {
        // 10 rows; the top-scored one churns; 2 churners in all.
        let p: Vec<f64> = (0..10).map(|i| f64::from(i) / 10.0).collect();
        let y = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        let m = evaluate(&p, &y);
        assert!((m.base_rate - 0.2).abs() < 1e-12);
        assert!((m.top_decile_lift - 5.0).abs() < 1e-12); // top 1 row: rate 1 / 0.2
        let brier = p.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / 10.0;
        assert!((m.brier - brier).abs() < 1e-12);
        assert_eq!(m.calibration.len(), 10);
    }

    #[test]
    fn roc_and_gains_of_a_hand_made_case() {
        // scores 0.9 (churn), 0.8 (stay), 0.7 (churn), 0.1 (stay)
        let p = [0.9, 0.8, 0.7, 0.1];
        let y = [1.0, 0.0, 1.0, 0.0];
        let roc = roc_curve(&p, &y, 10);
        assert_eq!(roc, vec![[0.0, 0.0], [0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [1.0, 1.0]]);
        let gains = gains_curve(&p, &y, 4);
        assert_eq!(gains, vec![[0.0, 0.0], [0.25, 0.5], [0.5, 0.5], [0.75, 1.0], [1.0, 1.0]]);
    }

    #[test]
    fn ols_by_hand() {
        // y = 1 + 2x on x = 0, 1, 2, 3 plus residuals (+0.1, -0.1, -0.1, +0.1): slope 2,
        // sd(x) = sqrt(5/3), so 2 * 1.290994 per sd; rss 0.04 over 2 df, se of the raw
        // slope sqrt(0.02 / 5) = 0.063246, per sd 0.081650.
        let x = vec![0.0, 1.0, 2.0, 3.0];
        let y = vec![1.1, 2.9, 4.9, 7.1];
        let (b, se, n) = ols_standardised(&[x], &y).unwrap();
        assert_eq!(n, 4);
        assert!((b[0] - 2.0 * (5.0f64 / 3.0).sqrt()).abs() < 1e-9, "{b:?}");
        assert!((se[0] - (0.02f64 / 5.0).sqrt() * (5.0f64 / 3.0).sqrt()).abs() < 1e-9, "{se:?}");
    }

    #[test]
    fn logistic_standard_errors_of_a_two_by_two_table() {
        // One binary x: the log odds ratio's se is sqrt(1/a + 1/b + 1/c + 1/d); on the
        // standardised scale it is multiplied by sd(x).
        let (a, b, c, d) = (30, 70, 10, 90); // x=1: 30 churn of 100; x=0: 10 of 100
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (xv, yv, k) in [(1.0, 1.0, a), (1.0, 0.0, b), (0.0, 1.0, c), (0.0, 0.0, d)] {
            x.extend(std::iter::repeat_n(xv, k));
            y.extend(std::iter::repeat_n(yv, k));
        }
        let design = Design::new(vec!["x".into()], vec![x]).unwrap();
        let m = Logistic::fit(&design, &y, 0.0);
        let se = m.std_errors(&design);
        let sd = (0.25f64 * 200.0 / 199.0).sqrt();
        let lor = (30.0f64 * 90.0 / (70.0 * 10.0)).ln();
        assert!((m.coef[0] - lor * sd).abs() < 1e-6, "{} vs {}", m.coef[0], lor * sd);
        let want = (1.0 / 30.0 + 1.0 / 70.0 + 1.0 / 10.0 + 1.0 / 90.0f64).sqrt() * sd;
        assert!((se[0] - want).abs() < 1e-6, "{} vs {want}", se[0]);
    }

    #[test]
    fn logistic_recovers_known_coefficients() {
        // y ~ Bernoulli(σ(-1 + 2 x1 - x2)), x uniform on a grid; no penalty to speak of.
        let n = 40_000;
        let mut state = 42u64;
        let mut u = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (mut x1, mut x2, mut y) = (vec![], vec![], vec![]);
        for _ in 0..n {
            let (a, b) = (u() * 2.0 - 1.0, u() * 2.0 - 1.0);
            x1.push(a);
            x2.push(b);
            y.push(f64::from(u() < sigmoid(-1.0 + 2.0 * a - b)));
        }
        let d = Design::new(vec!["x1".into(), "x2".into()], vec![x1, x2]).unwrap();
        let m = Logistic::fit(&d, &y, 1e-6);
        // back to the raw scale: beta = coef / sd; intercept = b0 - sum beta * mean
        let beta: Vec<f64> = m.coef.iter().zip(&m.sds).map(|(c, s)| c / s).collect();
        let b0 = m.intercept - beta.iter().zip(&m.means).map(|(b, mu)| b * mu).sum::<f64>();
        assert!((beta[0] - 2.0).abs() < 0.1 && (beta[1] + 1.0).abs() < 0.1 && (b0 + 1.0).abs() < 0.1, "{b0} {beta:?}");
    }

    #[test]
    fn platt_recovers_a_known_distortion() {
        // scores s = σ(z), truth p = σ(0.5 z - 1)
        let mut scores = vec![];
        let mut y = vec![];
        let mut state = 7u64;
        let mut u = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        for _ in 0..50_000 {
            let z = u() * 8.0 - 4.0;
            scores.push(sigmoid(z));
            y.push(f64::from(u() < sigmoid(0.5 * z - 1.0)));
        }
        let p = Platt::fit(&scores, &y);
        assert!((p.a - 0.5).abs() < 0.05 && (p.b + 1.0).abs() < 0.05, "{p:?}");
    }

    #[test]
    fn folds_are_stratified() {
        let y: Vec<f64> = (0..1000).map(|i| f64::from(i % 5 == 0)).collect();
        let f = stratified_folds(&y, 5, 1);
        for k in 0..5 {
            let rows: Vec<usize> = (0..1000).filter(|&i| f[i] == k).collect();
            assert_eq!(rows.len(), 200);
            assert_eq!(rows.iter().filter(|&&i| y[i] > 0.5).count(), 40);
        }
    }
}
