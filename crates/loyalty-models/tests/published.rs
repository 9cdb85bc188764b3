//! The models against published fits: CDNOW (Fader, Hardie & Lee 2005; Fader & Hardie
//! 2013) and the survivor tables of Fader & Hardie (2007).

use std::path::PathBuf;

use loyalty_models::{Rfm, Spend, bgnbd, gamma_gamma, pareto_nbd, rfm, sbg};

fn external(name: &str) -> PathBuf {
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.join("../../data/external").join(name)
}

/// The published CDNOW summary: ID, x, t_x, T (weeks), zbar.
fn cdnow_summary() -> Vec<(f64, f64, f64, f64)> {
    let text = std::fs::read_to_string(external("cdnow_customers_summary_with_transactions.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let v: Vec<f64> = l.split(',').map(|s| s.trim().parse().unwrap()).collect();
            (v[1], v[2], v[3], v[4])
        })
        .collect()
}

/// Equal to `sig` significant digits.
fn sig(got: f64, published: f64, digits: i32) -> bool {
    let scale = 10f64.powi(published.abs().log10().floor() as i32 - digits + 1);
    (got - published).abs() <= 0.5 * scale + 1e-12
}

fn rows() -> Vec<Rfm> {
    cdnow_summary().iter().map(|&(x, t_x, t, _)| Rfm { x, t_x, t, weight: 1.0 }).collect()
}

#[test]
fn bgnbd_reproduces_fader_hardie_lee_2005_on_cdnow() {
    let all = rows();
    assert_eq!(all.len(), 2357);
    let compressed = rfm::compress(&all);
    assert!(compressed.len() < all.len());
    let (m, o) = bgnbd::fit(&compressed);
    eprintln!(
        "BG/NBD {m:?} LL {} SE {:?} ({} rows from {})",
        o.log_likelihood,
        o.std_errors,
        compressed.len(),
        all.len()
    );
    // Published: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4
    assert!(sig(m.r, 0.243, 3) && sig(m.alpha, 4.41, 3) && sig(m.a, 0.793, 3) && sig(m.b, 2.43, 3), "{m:?}");
    assert!(sig(o.log_likelihood, -9582.4, 5), "{}", o.log_likelihood);
    // The uncompressed rows give the same likelihood.
    assert!((m.log_likelihood(&all) - o.log_likelihood).abs() < 1e-6);
    assert!(o.std_errors.iter().all(|s| s.is_finite() && *s > 0.0));
    // FHL 2005: a customer with x = 2, t_x = 30.43, T = 38.86 is expected to make
    // 1.226 purchases in the next 39 weeks.
    let e = m.expected_transactions(39.0, 2.0, 30.43, 38.86);
    assert!(sig(e, 1.226, 3), "{e}");
}

#[test]
fn pareto_nbd_reproduces_the_published_cdnow_fit() {
    let (m, o) = pareto_nbd::fit(&rfm::compress(&rows()));
    eprintln!("Pareto/NBD {m:?} LL {} SE {:?}", o.log_likelihood, o.std_errors);
    // Published (Fader, Hardie & Lee 2005): r = 0.553, alpha = 10.58, s = 0.606, beta = 11.67, LL = -9595.0
    assert!(sig(m.r, 0.553, 3) && sig(m.alpha, 10.6, 3) && sig(m.s, 0.606, 3) && sig(m.beta, 11.7, 3), "{m:?}");
    assert!(sig(o.log_likelihood, -9595.0, 5), "{}", o.log_likelihood);
    assert!(o.std_errors.iter().all(|s| s.is_finite() && *s > 0.0));
}

#[test]
fn gamma_gamma_reproduces_fader_hardie_2013_on_cdnow() {
    let spend: Vec<Spend> = cdnow_summary()
        .iter()
        .filter(|r| r.0 > 0.0)
        .map(|&(x, _, _, zbar)| Spend { x, mean_value: zbar, weight: 1.0 })
        .collect();
    assert_eq!(spend.len(), 946);
    let (m, o) = gamma_gamma::fit(&spend);
    eprintln!("Gamma-Gamma {m:?} LL {} SE {:?}", o.log_likelihood, o.std_errors);
    // Published: p = 6.25, q = 3.74, gamma = 15.44
    assert!(sig(m.p, 6.25, 3) && sig(m.q, 3.74, 3) && sig(m.gamma, 15.4, 3), "{m:?}");
    // The log-likelihood is not in the note; python lifetimes 0.11.3 (GammaGammaFitter,
    // same 946 rows) computes -4055.9232, with p 6.2488, q 3.7446, v 15.4477.
    assert!(sig(o.log_likelihood, -4055.92, 6), "{}", o.log_likelihood);
}

/// Fader & Hardie (2007), Table 1: % of customers still active at years 0..12.
const REGULAR: [f64; 13] = [1000.0, 631.0, 468.0, 382.0, 326.0, 289.0, 262.0, 241.0, 223.0, 207.0, 194.0, 183.0, 173.0];
const HIGH_END: [f64; 13] =
    [1000.0, 869.0, 743.0, 653.0, 593.0, 551.0, 517.0, 491.0, 468.0, 445.0, 427.0, 409.0, 394.0];

#[test]
fn sbg_reproduces_fader_hardie_2007_table_fits() {
    // Fitted to years 1-7: regular alpha = 0.704, beta = 1.182, LL = -1680.3; high end
    // alpha = 0.668, beta = 3.806, LL = -1611.2.
    for (data, alpha, beta, ll) in [(REGULAR, 0.704, 1.182, -1680.3), (HIGH_END, 0.668, 3.806, -1611.2)] {
        let (m, o) = sbg::fit(&[data[..8].to_vec()]);
        eprintln!("sBG {m:?} LL {} SE {:?}", o.log_likelihood, o.std_errors);
        assert!(sig(m.alpha, alpha, 3) && sig(m.beta, beta, 3), "{m:?}");
        assert!(sig(o.log_likelihood, ll, 5), "{}", o.log_likelihood);
        // The projection of years 8-12 stays within 2 points of the observed share.
        for t in 8..13 {
            let projected = 1000.0 * m.survival(t);
            assert!((projected - data[t as usize]).abs() < 20.0, "year {t}: {projected} vs {}", data[t as usize]);
        }
    }
}

#[test]
fn derl_equals_the_discounted_sum_it_stands_for() {
    let m = loyalty_models::Sbg { alpha: 0.704, beta: 1.182 };
    for renewals in [0u32, 1, 4] {
        for d in [0.05f64, 0.1, 0.2] {
            // sum over t >= n of S(t)/S(n-1) (1+d)^-(t-n), n - 1 = renewals
            let n = renewals + 1;
            let brute: f64 =
                (n..20_000).map(|t| m.survival(t) / m.survival(n - 1) / (1.0 + d).powi((t - n) as i32)).sum();
            let derl = m.derl(d, renewals);
            assert!((derl - brute).abs() < 1e-9 * brute, "{renewals} {d}: {derl} vs {brute}");
        }
    }
}

#[test]
fn heavy_buyers_give_finite_numbers() {
    let m = loyalty_models::BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
    let p = loyalty_models::ParetoNbd { r: 0.553, alpha: 10.58, s: 0.606, beta: 11.67 };
    for x in [100.0, 500.0, 2000.0, 10_000.0] {
        for (t_x, t) in [(38.0, 39.0), (5.0, 39.0), (39.0, 39.0), (1000.0, 1040.0)] {
            let values = [
                m.ln_likelihood(x, t_x, t),
                m.p_alive(x, t_x, t),
                m.expected_transactions(39.0, x, t_x, t),
                p.ln_likelihood(x, t_x, t),
                p.p_alive(x, t_x, t),
                p.expected_transactions(39.0, x, t_x, t),
            ];
            assert!(values.iter().all(|v| v.is_finite()), "x {x} t_x {t_x} T {t}: {values:?}");
            assert!((0.0..=1.0).contains(&values[1]) && (0.0..=1.0).contains(&values[4]));
        }
    }
}

#[test]
fn discounted_transactions_telescope_without_discounting() {
    let m = loyalty_models::BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
    let (x, t_x, t) = (2.0, 30.43, 38.86);
    let undiscounted = m.discounted_transactions(4.348, 24, 0.0, x, t_x, t);
    let total = m.expected_transactions(4.348 * 24.0, x, t_x, t);
    assert!((undiscounted - total).abs() < 1e-9, "{undiscounted} vs {total}");
    let discounted = m.discounted_transactions(4.348, 24, 0.008, x, t_x, t);
    assert!(discounted < undiscounted && discounted > 0.8 * undiscounted);
}
