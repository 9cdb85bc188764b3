//! Maximum likelihood: Nelder-Mead on log parameters (every parameter of these
//! models is positive), restarted until it stops improving, then standard errors
//! from the inverse of the numerical Hessian of the negative log-likelihood.

/// The result of a fit.
#[derive(Debug, Clone)]
pub struct Optimum {
    pub params: Vec<f64>,
    pub log_likelihood: f64,
    /// Standard errors of `params` (NaN when the Hessian is not positive definite).
    pub std_errors: Vec<f64>,
    pub evaluations: usize,
    pub converged: bool,
}

fn nelder_mead(f: &mut dyn FnMut(&[f64]) -> f64, start: &[f64], step: f64, max_evals: usize) -> (Vec<f64>, f64, usize) {
    let n = start.len();
    let mut simplex: Vec<Vec<f64>> = vec![start.to_vec()];
    for i in 0..n {
        let mut p = start.to_vec();
        p[i] += step;
        simplex.push(p);
    }
    let mut values: Vec<f64> = simplex.iter().map(|p| f(p)).collect();
    let mut evals = n + 1;
    let (alpha, gamma, rho, sigma) = (1.0, 2.0, 0.5, 0.5);
    while evals < max_evals {
        let mut order: Vec<usize> = (0..=n).collect();
        order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
        simplex = order.iter().map(|&i| simplex[i].clone()).collect();
        values = order.iter().map(|&i| values[i]).collect();
        let spread = (values[n] - values[0]).abs();
        let size = (1..=n)
            .map(|i| simplex[i].iter().zip(&simplex[0]).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max))
            .fold(0.0, f64::max);
        if spread <= 1e-13 * (1.0 + values[0].abs()) && size < 1e-9 {
            break;
        }
        let centroid: Vec<f64> = (0..n).map(|j| simplex[..n].iter().map(|p| p[j]).sum::<f64>() / n as f64).collect();
        let towards =
            |t: f64, from: &[f64]| -> Vec<f64> { centroid.iter().zip(from).map(|(c, x)| c + t * (x - c)).collect() };
        let reflected = towards(-alpha, &simplex[n]);
        let fr = f(&reflected);
        evals += 1;
        if fr < values[0] {
            let expanded = towards(-gamma, &simplex[n]);
            let fe = f(&expanded);
            evals += 1;
            if fe < fr {
                simplex[n] = expanded;
                values[n] = fe;
            } else {
                simplex[n] = reflected;
                values[n] = fr;
            }
        } else if fr < values[n - 1] {
            simplex[n] = reflected;
            values[n] = fr;
        } else {
            let (contracted, fc) = if fr < values[n] {
                let p = towards(-rho, &simplex[n]);
                let v = f(&p);
                (p, v)
            } else {
                let p = towards(rho, &simplex[n]);
                let v = f(&p);
                (p, v)
            };
            evals += 1;
            if fc < values[n].min(fr) {
                simplex[n] = contracted;
                values[n] = fc;
            } else {
                for i in 1..=n {
                    simplex[i] = simplex[0].iter().zip(&simplex[i]).map(|(b, x)| b + sigma * (x - b)).collect();
                    values[i] = f(&simplex[i]);
                }
                evals += n;
            }
        }
    }
    let best = (0..=n).min_by(|&i, &j| values[i].total_cmp(&values[j])).unwrap_or(0);
    (simplex[best].clone(), values[best], evals)
}

/// Maximise `log_lik` over positive parameters starting from `start`.
pub fn maximize(log_lik: &dyn Fn(&[f64]) -> f64, start: &[f64]) -> Optimum {
    let mut evaluations = 0;
    // Minimise -LL over theta = ln(params); non-finite values are walls.
    let mut objective = |theta: &[f64]| {
        let p: Vec<f64> = theta.iter().map(|t| t.exp()).collect();
        let v = -log_lik(&p);
        if v.is_finite() { v } else { f64::INFINITY }
    };
    let mut theta: Vec<f64> = start.iter().map(|p| p.ln()).collect();
    let mut best = objective(&theta);
    let mut converged = false;
    for round in 0..20 {
        let step = if round == 0 { 0.5 } else { 0.05 };
        let (t, v, e) = nelder_mead(&mut objective, &theta, step, 20_000);
        evaluations += e;
        let improved = best - v;
        if v <= best {
            theta = t;
            best = v;
        }
        if round > 0 && improved.abs() <= 1e-10 * (1.0 + best.abs()) {
            converged = true;
            break;
        }
    }
    let params: Vec<f64> = theta.iter().map(|t| t.exp()).collect();
    let std_errors = std_errors(log_lik, &params);
    Optimum { params, log_likelihood: -best, std_errors, evaluations, converged }
}

/// Standard errors: sqrt of the diagonal of the inverse observed information
/// (-Hessian of the log-likelihood in the natural parameters, central differences).
pub fn std_errors(log_lik: &dyn Fn(&[f64]) -> f64, p: &[f64]) -> Vec<f64> {
    let n = p.len();
    let h: Vec<f64> = p.iter().map(|x| 1e-4 * x.abs().max(1e-8)).collect();
    let at = |d: &[(usize, f64)]| {
        let mut q = p.to_vec();
        for &(i, s) in d {
            q[i] += s;
        }
        log_lik(&q)
    };
    let f0 = log_lik(p);
    let mut info = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in i..n {
            let v = if i == j {
                (at(&[(i, h[i])]) - 2.0 * f0 + at(&[(i, -h[i])])) / (h[i] * h[i])
            } else {
                (at(&[(i, h[i]), (j, h[j])]) - at(&[(i, h[i]), (j, -h[j])]) - at(&[(i, -h[i]), (j, h[j])])
                    + at(&[(i, -h[i]), (j, -h[j])]))
                    / (4.0 * h[i] * h[j])
            };
            info[i][j] = -v;
            info[j][i] = -v;
        }
    }
    match invert(info) {
        Some(inv) => (0..n).map(|i| if inv[i][i] > 0.0 { inv[i][i].sqrt() } else { f64::NAN }).collect(),
        None => vec![f64::NAN; n],
    }
}

/// Gauss-Jordan inverse with partial pivoting; None when singular.
pub(crate) fn invert(mut a: Vec<Vec<f64>>) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let mut inv: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect()).collect();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 || !a[pivot][col].is_finite() {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let d = a[col][col];
        for j in 0..n {
            a[col][j] /= d;
            inv[col][j] /= d;
        }
        for i in 0..n {
            if i != col {
                let m = a[i][col];
                for j in 0..n {
                    a[i][j] -= m * a[col][j];
                    inv[i][j] -= m * inv[col][j];
                }
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_normal_mean_and_sd_with_textbook_standard_errors() {
        // x_i: LL(mu, sigma) with mu > 0; MLE: mean, sd (1/n); SE(mu) = sigma/sqrt(n), SE(sigma) = sigma/sqrt(2n)
        let xs: Vec<f64> = (0..400).map(|i| 10.0 + ((i * 37 % 101) as f64 - 50.0) / 10.0).collect();
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        let ll = |p: &[f64]| xs.iter().map(|x| -p[1].ln() - 0.5 * ((x - p[0]) / p[1]).powi(2)).sum::<f64>();
        let o = maximize(&ll, &[1.0, 1.0]);
        assert!(o.converged);
        assert!((o.params[0] - mean).abs() < 1e-6 && (o.params[1] - sd).abs() < 1e-6, "{:?}", o.params);
        assert!((o.std_errors[0] - sd / n.sqrt()).abs() < 1e-4 * sd);
        assert!((o.std_errors[1] - sd / (2.0 * n).sqrt()).abs() < 1e-4 * sd);
    }
}
