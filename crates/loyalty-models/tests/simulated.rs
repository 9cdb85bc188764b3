//! Recovery of known parameters: data simulated from each model, fitted back; every
//! estimate within 4 standard errors of the truth.

use loyalty_models::{Rfm, Spend, bgnbd, gamma_gamma, pareto_nbd, rfm, sbg};

/// splitmix64, with the samplers the models need.
struct Rng(u64);

impl Rng {
    fn u(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        (-2.0 * self.u().ln()).sqrt() * (2.0 * std::f64::consts::PI * self.u()).cos()
    }
    fn exp(&mut self, rate: f64) -> f64 {
        -self.u().ln() / rate
    }
    /// Gamma(shape, rate) by Marsaglia & Tsang.
    fn gamma(&mut self, shape: f64, rate: f64) -> f64 {
        if shape < 1.0 {
            return self.gamma(shape + 1.0, rate) * self.u().powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v > 0.0 && self.u().ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v / rate;
            }
        }
    }
    fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a, 1.0);
        x / (x + self.gamma(b, 1.0))
    }
}

fn within(name: &str, got: f64, se: f64, truth: f64) {
    assert!(se.is_finite() && se > 0.0, "{name}: standard error {se}");
    assert!((got - truth).abs() < 4.0 * se, "{name}: {got} (se {se}) vs truth {truth}");
}

/// Birth times spread over a year of weeks: T between 1 and 52.
fn observed(rng: &mut Rng) -> f64 {
    (1.0 + 51.0 * rng.u()).round()
}

#[test]
fn bgnbd_recovers_known_parameters() {
    let (r, alpha, a, b) = (0.25, 4.0, 0.8, 2.5);
    let mut rng = Rng(11);
    let rows: Vec<Rfm> = (0..30_000)
        .map(|_| {
            let (lambda, p, t) = (rng.gamma(r, alpha), rng.beta(a, b), observed(&mut rng));
            let (mut now, mut x, mut t_x) = (0.0, 0.0, 0.0);
            loop {
                now += rng.exp(lambda);
                if now > t {
                    break;
                }
                x += 1.0;
                t_x = now;
                if rng.u() < p {
                    break;
                }
            }
            Rfm { x, t_x, t, weight: 1.0 }
        })
        .collect();
    let (m, o) = bgnbd::fit(&rfm::compress(&rows));
    eprintln!("{m:?} {:?}", o.std_errors);
    for (name, got, se, truth) in [
        ("r", m.r, o.std_errors[0], r),
        ("alpha", m.alpha, o.std_errors[1], alpha),
        ("a", m.a, o.std_errors[2], a),
        ("b", m.b, o.std_errors[3], b),
    ] {
        within(name, got, se, truth);
    }
}

#[test]
fn pareto_nbd_recovers_known_parameters() {
    let (r, alpha, s, beta) = (0.5, 8.0, 0.7, 12.0);
    let mut rng = Rng(12);
    let rows: Vec<Rfm> = (0..30_000)
        .map(|_| {
            let (lambda, mu, t) = (rng.gamma(r, alpha), rng.gamma(s, beta), observed(&mut rng));
            let life = rng.exp(mu).min(t);
            let (mut now, mut x, mut t_x) = (0.0, 0.0, 0.0);
            loop {
                now += rng.exp(lambda);
                if now > life {
                    break;
                }
                x += 1.0;
                t_x = now;
            }
            Rfm { x, t_x, t, weight: 1.0 }
        })
        .collect();
    let (m, o) = pareto_nbd::fit(&rfm::compress(&rows));
    eprintln!("{m:?} {:?}", o.std_errors);
    for (name, got, se, truth) in [
        ("r", m.r, o.std_errors[0], r),
        ("alpha", m.alpha, o.std_errors[1], alpha),
        ("s", m.s, o.std_errors[2], s),
        ("beta", m.beta, o.std_errors[3], beta),
    ] {
        within(name, got, se, truth);
    }
}

#[test]
fn gamma_gamma_recovers_known_parameters() {
    let (p, q, gamma) = (6.0, 4.0, 15.0);
    let mut rng = Rng(13);
    let rows: Vec<Spend> = (0..20_000)
        .map(|_| {
            let nu = rng.gamma(q, gamma);
            let x = 1.0 + (rng.u() * 10.0).floor();
            let total: f64 = (0..x as usize).map(|_| rng.gamma(p, nu)).sum();
            Spend { x, mean_value: total / x, weight: 1.0 }
        })
        .collect();
    let (m, o) = gamma_gamma::fit(&rows);
    eprintln!("{m:?} {:?}", o.std_errors);
    within("p", m.p, o.std_errors[0], p);
    within("q", m.q, o.std_errors[1], q);
    within("gamma", m.gamma, o.std_errors[2], gamma);
}

#[test]
fn sbg_recovers_known_parameters_from_several_cohorts() {
    let (alpha, beta) = (0.9, 2.0);
    let mut rng = Rng(14);
    // 12 cohorts of 2,000, observed for 12 down to 1 periods.
    let cohorts: Vec<Vec<f64>> = (0..12)
        .map(|k| {
            let periods = 12 - k;
            let mut counts = vec![0.0; periods + 1];
            for _ in 0..2_000 {
                let theta = rng.beta(alpha, beta);
                let mut t = 0;
                counts[0] += 1.0;
                while t < periods && rng.u() >= theta {
                    t += 1;
                    counts[t] += 1.0;
                }
            }
            counts
        })
        .collect();
    let (m, o) = sbg::fit(&cohorts);
    eprintln!("{m:?} {:?}", o.std_errors);
    within("alpha", m.alpha, o.std_errors[0], alpha);
    within("beta", m.beta, o.std_errors[1], beta);
}

#[test]
fn bgnbd_p_alive_after_h_matches_simulation() {
    // Customers with the same history (x = 3, t_x = 20, T = 30 weeks): draw (λ, p)
    // from the posterior given alive, simulate h = 26 more weeks, count survivors.
    let m = loyalty_models::BgNbd { r: 0.6, alpha: 5.0, a: 1.5, b: 3.0 };
    let (x, t_x, t, h) = (3.0, 20.0, 30.0, 26.0);
    let mut rng = Rng(21);
    let n = 400_000;
    let mut alive = 0usize;
    for _ in 0..n {
        let lambda = rng.gamma(m.r + x, m.alpha + t);
        let p = rng.beta(m.a, m.b + x);
        let mut now = 0.0;
        let mut dropped = false;
        loop {
            now += rng.exp(lambda);
            if now > h {
                break;
            }
            if rng.u() < p {
                dropped = true;
                break;
            }
        }
        alive += usize::from(!dropped);
    }
    let simulated = m.p_alive(x, t_x, t) * alive as f64 / n as f64;
    let formula = m.p_alive_after(h, x, t_x, t);
    assert!((simulated - formula).abs() < 0.003, "{simulated} vs {formula}");
    assert!((m.p_alive_after(0.0, x, t_x, t) - m.p_alive(x, t_x, t)).abs() < 1e-12);
}
