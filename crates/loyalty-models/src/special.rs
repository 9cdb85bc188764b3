//! Special functions in log space: log-gamma, log-beta, the Gauss hypergeometric
//! series 2F1, and log-sum/diff-exp.

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error ~1e-15), with the
/// reflection formula below 0.5.
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Γ(x) Γ(1-x) = π / sin(πx)
        let s = (std::f64::consts::PI * x).sin().abs();
        return std::f64::consts::PI.ln() - s.ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// ln B(a, b).
pub fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// ln(e^a + e^b).
pub fn log_add_exp(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// ln(e^a - e^b) for a >= b.
pub fn log_sub_exp(a: f64, b: f64) -> f64 {
    if b == f64::NEG_INFINITY {
        return a;
    }
    a + (-(b - a).exp()).ln_1p()
}

/// ln 2F1(a, b; c; z) for 0 <= z < 1 and a, b, c > 0 (every term positive), by the
/// Gauss series with rescaling, so values far beyond f64's range stay finite.
/// Returns NaN when the series does not converge within its term budget.
pub fn ln_hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    debug_assert!((0.0..1.0).contains(&z) && a > 0.0 && b > 0.0 && c > 0.0);
    if z == 0.0 {
        return 0.0;
    }
    let mut term = 1.0f64;
    let mut sum = 1.0f64;
    let mut scale = 0.0f64; // ln of the factor taken out of term and sum
    for k in 0..2_000_000u32 {
        let k = f64::from(k);
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        sum += term;
        if sum > 1e280 {
            term *= 1e-280;
            sum *= 1e-280;
            scale += 280.0 * std::f64::consts::LN_10;
        }
        // Terms are decreasing once (a+k)(b+k)z < (c+k)(k+1); stop when negligible.
        if term < sum * 1e-17 && (a + k) * (b + k) * z < (c + k) * (k + 1.0) {
            return sum.ln() + scale;
        }
    }
    f64::NAN
}

/// 2F1(a, b; c; z) for 0 <= z < 1 by the Gauss series, for any real a, b and c > 0
/// where the series converges (terms may change sign). For moderate values only.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let mut term = 1.0f64;
    let mut sum = 1.0f64;
    for k in 0..2_000_000u32 {
        let k = f64::from(k);
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        sum += term;
        if term.abs() < sum.abs() * 1e-17 && ((a + k) * (b + k) * z).abs() < ((c + k) * (k + 1.0)).abs() {
            return sum;
        }
    }
    f64::NAN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_gamma_matches_factorials_and_half_integers() {
        let mut f = 1.0f64;
        for n in 1..30 {
            f *= n as f64;
            assert!((ln_gamma(n as f64 + 1.0) - f.ln()).abs() < 1e-12 * f.ln().max(1.0), "{n}");
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-14);
        assert!((ln_gamma(0.1) - 2.252_712_651_734_206).abs() < 1e-13);
        // Stirling for a large argument
        let x = 1e6f64;
        let stirling = (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x);
        assert!((ln_gamma(x) - stirling).abs() < 1e-6);
    }

    #[test]
    fn hyp2f1_matches_closed_forms() {
        // 2F1(1, 1; 2; z) = -ln(1-z)/z
        for z in [0.1, 0.5, 0.9, 0.99] {
            let exact = -(1.0f64 - z).ln() / z;
            assert!((ln_hyp2f1(1.0, 1.0, 2.0, z).exp() - exact).abs() < 1e-12 * exact, "{z}");
            assert!((hyp2f1(1.0, 1.0, 2.0, z) - exact).abs() < 1e-12 * exact, "{z}");
        }
        // 2F1(a, b; b; z) = (1-z)^-a, also far beyond f64's range in log space
        assert!((ln_hyp2f1(3.5, 2.0, 2.0, 0.3) - (-3.5 * 0.7f64.ln())).abs() < 1e-12);
        let big = ln_hyp2f1(2000.0, 7.0, 7.0, 0.5);
        assert!((big - 2000.0 * 2f64.ln()).abs() < 1e-9 * big, "{big}");
        // a negative integer: a polynomial. 2F1(-2, b; c; z) = 1 - 2bz/c + b(b+1)z^2/(c(c+1))
        let (b, c, z) = (1.5, 2.5, 0.4);
        let exact = 1.0 - 2.0 * b * z / c + b * (b + 1.0) * z * z / (c * (c + 1.0));
        assert!((hyp2f1(-2.0, b, c, z) - exact).abs() < 1e-14);
    }

    #[test]
    fn log_sums() {
        assert!((log_add_exp(2f64.ln(), 3f64.ln()) - 5f64.ln()).abs() < 1e-15);
        assert!((log_sub_exp(5f64.ln(), 3f64.ln()) - 2f64.ln()).abs() < 1e-15);
        assert!((log_add_exp(1000.0, 1000.0) - (1000.0 + 2f64.ln())).abs() < 1e-12);
    }
}
