//! Simulating one chunk of customers, month by month, from its own RNG stream.

use chrono::{Datelike, NaiveDate};
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma, LogNormal, Poisson, StandardNormal};

use crate::future::{self, Future, Now};
use crate::world::{World, add_months, days_in_month, month_index};

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
const CHANNELS: [&str; 4] = ["call", "app", "web", "store"];
const CHANNEL_SHARES: [f64; 4] = [0.40, 0.25, 0.25, 0.10];
pub const ID_BASE: i64 = 1_000_000;
const REFERRED_BASE: i64 = 900_000_000;

fn days(d: NaiveDate) -> i32 {
    (d - EPOCH).num_days() as i32
}

fn micros(d: NaiveDate, seconds: i64) -> i64 {
    (i64::from(days(d)) * 86_400 + seconds) * 1_000_000
}

/// Standard normal CDF (Abramowitz-Stegun 7.1.26 erf; error < 1.5e-7).
fn norm_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 { 0.5 * (1.0 + erf) } else { 0.5 * (1.0 - erf) }
}

/// Cut points of N(0, sd) that split it into the given shares.
pub fn cut_points(shares: &[f64; 5], sd: f64) -> [f64; 4] {
    let mut cuts = [0.0; 4];
    let mut cum = 0.0;
    for (i, s) in shares.iter().take(4).enumerate() {
        cum += s;
        let (mut lo, mut hi) = (-10.0, 10.0);
        for _ in 0..80 {
            let mid = 0.5 * (lo + hi);
            if norm_cdf(mid) < cum { lo = mid } else { hi = mid }
        }
        cuts[i] = 0.5 * (lo + hi) * sd;
    }
    cuts
}

fn level(x: f64, cuts: &[f64; 4]) -> u8 {
    1 + cuts.iter().filter(|c| x > **c).count() as u8
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn season(month: u32) -> f64 {
    // Peak in December, trough in June.
    1.0 + 0.08 * (2.0 * std::f64::consts::PI * (f64::from(month) - 12.0) / 12.0).cos()
}

/// Column buffers of every table, filled row by row.
#[derive(Default)]
struct Cols {
    c_id: Vec<i64>,
    c_signup: Vec<i32>,
    c_market: Vec<String>,
    c_plan: Vec<&'static str>,
    c_contract: Vec<Option<i64>>,
    c_churn: Vec<Option<i32>>,
    c_reason: Vec<Option<&'static str>>,

    b_id: Vec<i64>,
    b_month: Vec<i32>,
    b_charge: Vec<f64>,
    b_cost: Vec<f64>,
    b_voice: Vec<f64>,
    b_data: Vec<f64>,
    b_sms: Vec<i64>,
    b_discount: Vec<f64>,
    b_paid: Vec<f64>,
    b_late: Vec<Option<i64>>,

    s_id: Vec<i64>,
    s_service: Vec<&'static str>,
    s_start: Vec<i32>,
    s_end: Vec<Option<i32>>,

    t_id: Vec<i64>,
    t_ts: Vec<i64>,
    t_amount: Vec<f64>,

    i_id: Vec<i64>,
    i_ts: Vec<i64>,
    i_channel: Vec<&'static str>,
    i_kind: Vec<&'static str>,
    i_resolved: Vec<Option<bool>>,

    v_id: Vec<i64>,
    v_date: Vec<i32>,
    v_overall: Vec<i64>,
    v_aspects: [Vec<Option<i64>>; 6],
    v_recommend: Vec<Option<i64>>,
    v_truth_retained: Vec<f64>,
    v_observable: Vec<bool>,
    v_level: Vec<&'static str>,

    r_id: Vec<i64>,
    r_referred: Vec<i64>,
    r_date: Vec<i32>,

    g_id: Vec<i64>,
    g_level: Vec<&'static str>,
    g_ci: Vec<f64>,
    g_sat: Vec<i64>,
    g_base_hazard: Vec<f64>,
    g_departure: Vec<Option<i32>>,
    g_exposure: Vec<i64>,
    g_expected: Vec<f64>,
    g_future_churn: Vec<Option<i32>>,
    g_true_p: [Vec<Option<f64>>; 3],

    a_id: Vec<i64>,
    a_service: Vec<&'static str>,
    a_p: Vec<f64>,
}

/// The frames of one chunk. `truth_*` frames go to `truth/`, not into the dataset.
pub struct ChunkFrames {
    pub customers: DataFrame,
    pub billing: DataFrame,
    pub services: DataFrame,
    pub topups: DataFrame,
    pub interactions: DataFrame,
    pub surveys: DataFrame,
    pub referrals: DataFrame,
    pub truth_customers: DataFrame,
    pub truth_adoption: DataFrame,
    pub truth_surveys: DataFrame,
    /// (competition level 0..3, overall 1..5) -> (observable surveys, sum of true P(retained)).
    pub curve: [[(u64, f64); 5]; 3],
}

fn date_col(name: &str, v: Vec<i32>) -> PolarsResult<Column> {
    Series::new(name.into(), v).cast(&DataType::Date).map(Column::from)
}

fn opt_date_col(name: &str, v: Vec<Option<i32>>) -> PolarsResult<Column> {
    Series::new(name.into(), v).cast(&DataType::Date).map(Column::from)
}

fn ts_col(name: &str, v: Vec<i64>) -> PolarsResult<Column> {
    Series::new(name.into(), v).cast(&DataType::Datetime(TimeUnit::Microseconds, None)).map(Column::from)
}

fn col<T, P: ?Sized>(name: &str, v: T) -> Column
where
    Series: NamedFrom<T, P>,
{
    Column::from(Series::new(name.into(), v))
}

fn frame(columns: Vec<Column>) -> PolarsResult<DataFrame> {
    DataFrame::new_infer_height(columns)
}

/// The contract-state multiplier of the churn hazard in month `m` (window index) for
/// a customer who signed up in month `signup_m`.
fn multiplier(world: &World, postpaid: bool, contract: i64, signup_m: i32, m: i32) -> f64 {
    let h = &world.hazards;
    if !postpaid {
        return h.prepaid_multiplier;
    }
    if contract <= 0 {
        return h.no_contract_multiplier;
    }
    let tenure = m - signup_m;
    if tenure > 0 && i64::from(tenure) % contract == 0 { h.contract_end_multiplier } else { h.in_contract_multiplier }
}

pub fn simulate(world: &World, chunk: usize, first: usize, count: usize) -> PolarsResult<ChunkFrames> {
    let p = &world.params;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    rng.set_stream(chunk as u64);
    let months = p.months as i32;
    let start = p.start;
    let end = world.data_end;
    let mut cols = Cols::default();
    let mut curve = [[(0u64, 0.0f64); 5]; 3];

    // Latent satisfaction: aspects z_a = 0.8 f + 0.6 e_a; u = sum w_a z_a + 0.35 e.
    let w = world.driver_weights;
    let w_sum: f64 = w.iter().sum();
    let w_sq: f64 = w.iter().map(|x| x * x).sum();
    let u_sd = (0.64 * w_sum * w_sum + 0.36 * w_sq + 0.35 * 0.35).sqrt();
    let sat_cuts = cut_points(&world.satisfaction_shares, u_sd);
    let aspect_cuts = cut_points(&world.satisfaction_shares, 1.25f64.sqrt());
    let market_cum: Vec<f64> = world
        .markets
        .iter()
        .scan(0.0, |acc, m| {
            *acc += m.weight;
            Some(*acc)
        })
        .collect();
    let channel_cum: Vec<f64> = CHANNEL_SHARES
        .iter()
        .scan(0.0, |acc, s| {
            *acc += s;
            Some(*acc)
        })
        .collect();
    let pick = |cum: &[f64], x: f64| cum.iter().position(|c| x < *c).unwrap_or(cum.len() - 1);
    let lognorm = |mean: f64, sd: f64| LogNormal::new(mean.ln(), sd).expect("valid lognormal");
    let postpaid_charge = lognorm(40.0, 0.35);
    let margin_beta = Beta::new(7.0, 13.0).expect("valid beta");
    let rate_gamma = Gamma::new(world.topup_rate_r, 1.0 / world.topup_rate_alpha).expect("valid gamma");
    let nu_gamma = Gamma::new(world.spend_q, 1.0 / world.spend_gamma).expect("valid gamma");
    let noise = |rng: &mut ChaCha8Rng, sd: f64| (sd * rng.sample::<f64, _>(StandardNormal)).exp();
    let mut referred = REFERRED_BASE + chunk as i64 * 10_000_000;

    for i in first..first + count {
        let id = ID_BASE + i as i64;
        let market = &world.markets[pick(&market_cum, rng.random())];
        let ci = market.competition_index;
        let comp_level = world.competition_level(ci);
        let comp_idx = match comp_level {
            "low" => 0,
            "medium" => 1,
            _ => 2,
        };
        // Signup: before the window (up to six years) or during it.
        let signup = if rng.random_bool(world.new_customer_share) {
            let m = rng.random_range(0..months);
            let first_day = add_months(start, m);
            first_day
                + chrono::Days::new(rng.random_range(0..days_in_month(first_day.year(), first_day.month())) as u64)
        } else {
            start - chrono::Days::new(rng.random_range(1..=72 * 30))
        };
        let signup_m = month_index(start, signup);
        let postpaid = rng.random_bool(world.postpaid_share);
        let contract = if postpaid {
            let x: f64 = rng.random();
            let (c0, s0) = world.contract_shares[0];
            let (c1, s1) = world.contract_shares[1];
            if x < s0 {
                c0
            } else if x < s0 + s1 {
                c1
            } else {
                world.contract_shares[2].0
            }
        } else {
            0
        };

        // Satisfaction and its aspects.
        let f: f64 = rng.sample(StandardNormal);
        let mut z = [0.0; 6];
        let mut u = 0.0;
        for a in 0..6 {
            z[a] = 0.8 * f + 0.6 * rng.sample::<f64, _>(StandardNormal);
            u += w[a] * z[a];
        }
        u += 0.35 * rng.sample::<f64, _>(StandardNormal);
        let sat = level(u, &sat_cuts);
        let s_idx = usize::from(sat - 1);
        let base_hazard = world.hazards.base(sat, ci);
        let hazard = |m: i32| {
            if m <= signup_m {
                0.0
            } else {
                (base_hazard * multiplier(world, postpaid, contract, signup_m, m)).min(0.9)
            }
        };

        // Money and usage traits.
        let price_level = 1.15 - 0.3 * ci;
        let premium = if sat == 5 { 1.08 } else { 1.0 };
        let base_charge = if postpaid { postpaid_charge.sample(&mut rng) * price_level * premium } else { 0.0 };
        let margin = if postpaid { margin_beta.sample(&mut rng) } else { 0.25 + 0.1 * rng.random::<f64>() };
        let trend = 0.004 * rng.sample::<f64, _>(StandardNormal);
        let voice_base = lognorm(180.0, 0.6).sample(&mut rng);
        let data_base = lognorm(3000.0, 0.8).sample(&mut rng);
        let sms_base = lognorm(20.0, 0.9).sample(&mut rng);
        let late_risk = Beta::new(1.0, 14.0).expect("valid beta").sample(&mut rng);
        let promo = postpaid && rng.random_bool(0.2);
        let promo_rate = rng.random_range(0.10..0.25);
        let promo_start = rng.random_range(0..months.max(1));
        let promo_len = rng.random_range(3..=6);
        let topup_rate = if postpaid { 0.0 } else { rate_gamma.sample(&mut rng) };
        let nu = nu_gamma.sample(&mut rng);
        let spend = Gamma::new(world.spend_p, 1.0 / nu).expect("valid gamma");
        let channel = pick(&channel_cum, rng.random());

        // Month by month: churn, billing, top-ups, contacts, surveys, referrals.
        let first_m = signup_m.max(0);
        let mut departure: Option<NaiveDate> = None;
        let mut last_unpaid = false;
        let mut last_activity = signup;
        let mut exposure = 0i64;
        let mut expected = 0.0;
        for m in first_m..months {
            let month_start = add_months(start, m);
            let dim = days_in_month(month_start.year(), month_start.month());
            let h = hazard(m);
            let mut active_from = 1;
            if m == signup_m {
                active_from = signup.day();
            }
            let mut active_to = dim;
            if h > 0.0 {
                exposure += 1;
                expected += h;
                if rng.random_bool(h) {
                    let day = rng.random_range(active_from..=dim);
                    active_to = day;
                    departure = Some(month_start + chrono::Days::new(u64::from(day - 1)));
                }
            }
            let frac = f64::from(active_to - active_from + 1) / f64::from(dim);
            let seas = season(month_start.month());
            let random_ts = |rng: &mut ChaCha8Rng| {
                let day = rng.random_range(active_from..=active_to);
                micros(month_start, i64::from(day - 1) * 86_400 + rng.random_range(7 * 3600..22 * 3600))
            };

            // Billing (prepaid: the month's top-ups).
            let (charge, discount) = if postpaid {
                let gross = base_charge * seas * (1.0 + trend * f64::from(m)).max(0.3) * noise(&mut rng, 0.07) * frac;
                let disc =
                    if promo && m >= promo_start && m < promo_start + promo_len { gross * promo_rate } else { 0.0 };
                (gross - disc, disc)
            } else {
                let n =
                    Poisson::new((topup_rate * seas * frac).max(1e-9)).expect("valid poisson").sample(&mut rng) as u64;
                let mut total = 0.0;
                for _ in 0..n {
                    let amount = (spend.sample(&mut rng) * 10.0).round().max(10.0) / 10.0;
                    let ts = random_ts(&mut rng);
                    cols.t_id.push(id);
                    cols.t_ts.push(ts);
                    cols.t_amount.push(amount);
                    total += amount;
                    let d = EPOCH + chrono::Days::new((ts / 86_400_000_000) as u64);
                    if d > last_activity {
                        last_activity = d;
                    }
                }
                (total, 0.0)
            };
            let usage = if postpaid { seas * frac } else { (charge / 15.0).min(4.0) };
            cols.b_id.push(id);
            cols.b_month.push(days(month_start));
            cols.b_charge.push((charge * 100.0).round() / 100.0);
            cols.b_cost.push(((charge + discount) * (1.0 - margin) * noise(&mut rng, 0.05) * 100.0).round() / 100.0);
            cols.b_voice.push((voice_base * usage * noise(&mut rng, 0.2) * 10.0).round() / 10.0);
            cols.b_data.push((data_base * 1.015f64.powi(m) * usage * noise(&mut rng, 0.25)).round());
            cols.b_sms.push(Poisson::new((sms_base * usage).max(1e-9)).expect("valid poisson").sample(&mut rng) as i64);
            cols.b_discount.push((discount * 100.0).round() / 100.0);
            let charge = (charge * 100.0).round() / 100.0;
            if postpaid {
                let p_late = (late_risk * (1.0 + 0.35 * f64::from(5 - sat))).min(0.9);
                if rng.random_bool(p_late) {
                    let p_unpaid = if departure.is_some() { 0.4 } else { 0.06 };
                    if rng.random_bool(p_unpaid) {
                        cols.b_paid.push(0.0);
                        cols.b_late.push(None);
                        last_unpaid = true;
                    } else {
                        cols.b_paid.push(charge);
                        cols.b_late.push(Some(1 + Exp::new(1.0 / 12.0).expect("valid exp").sample(&mut rng) as i64));
                    }
                } else {
                    cols.b_paid.push(charge);
                    cols.b_late.push(Some(0));
                }
            } else {
                cols.b_paid.push(charge);
                cols.b_late.push(Some(0));
            }

            // Care contacts: complaints rise with dissatisfaction.
            let n_complaints =
                Poisson::new(world.complaint_rate[s_idx] * frac).expect("valid poisson").sample(&mut rng) as u64;
            let n_other = Poisson::new(world.contact_rate * frac).expect("valid poisson").sample(&mut rng) as u64;
            for k in 0..n_complaints + n_other {
                let complaint = k < n_complaints;
                cols.i_id.push(id);
                cols.i_ts.push(random_ts(&mut rng));
                let ch = if rng.random_bool(0.7) { channel } else { rng.random_range(0..CHANNELS.len()) };
                cols.i_channel.push(CHANNELS[ch]);
                cols.i_kind.push(if complaint {
                    "complaint"
                } else if rng.random_bool(0.5) {
                    "inquiry"
                } else {
                    "request"
                });
                let p_resolved = if complaint { 0.45 + 0.08 * f64::from(sat) } else { 0.93 };
                cols.i_resolved.push(if rng.random_bool(0.05) { None } else { Some(rng.random_bool(p_resolved)) });
            }

            // Survey waves: the 15th of the wave months, among customers active that day.
            // (Nested on purpose: the sampling draw happens only for eligible customers,
            // which fixes the random stream that seeds reproduce.)
            #[allow(clippy::collapsible_if, clippy::needless_range_loop)]
            if world.survey_months.contains(&month_start.month()) && active_from <= 15 && active_to > 15 {
                if rng.random_bool(world.survey_sampling) {
                    let date = month_start + chrono::Days::new(14);
                    cols.v_id.push(id);
                    cols.v_date.push(days(date));
                    cols.v_overall.push(i64::from(sat));
                    for a in 0..6 {
                        let score = level(z[a] + 0.5 * rng.sample::<f64, _>(StandardNormal), &aspect_cuts);
                        cols.v_aspects[a].push(if rng.random_bool(0.1) { None } else { Some(i64::from(score)) });
                    }
                    let rec_mean = [2.0, 4.0, 6.0, 8.0, 9.3][s_idx];
                    let rec = (rec_mean + 1.2 * rng.sample::<f64, _>(StandardNormal)).round().clamp(0.0, 10.0) as i64;
                    cols.v_recommend.push(if rng.random_bool(0.05) { None } else { Some(rec) });
                    // True P(still a customer h months after the survey | active on it):
                    // departure days are uniform within the churn month.
                    let hm = world.horizon_months as i32;
                    let after = f64::from(dim - 15) / f64::from(dim);
                    let hs = hazard(m);
                    let mut p_ret = 1.0 - hs * after / (1.0 - hs * (1.0 - after));
                    for k in 1..hm {
                        p_ret *= 1.0 - hazard(m + k);
                    }
                    let target = add_months(month_start, hm);
                    let before = 15.0 / f64::from(days_in_month(target.year(), target.month()));
                    p_ret *= 1.0 - hazard(m + hm) * before;
                    let observable = add_months(date, hm) < end;
                    cols.v_truth_retained.push(p_ret);
                    cols.v_observable.push(observable);
                    cols.v_level.push(comp_level);
                    if observable {
                        let cell = &mut curve[comp_idx][s_idx];
                        cell.0 += 1;
                        cell.1 += p_ret;
                    }
                }
            }

            // Referrals come from the most satisfied.
            if rng.random_bool((world.referral_rate[s_idx] * frac).min(1.0)) {
                cols.r_id.push(id);
                referred += 1;
                cols.r_referred.push(referred);
                let day = rng.random_range(active_from..=active_to);
                cols.r_date.push(days(month_start) + day as i32 - 1);
            }
            if departure.is_some() {
                break;
            }
        }

        // Optional services: adopt with the true probability, early in tenure.
        let z_arpu = if postpaid { (base_charge / 40.0).ln() / 0.35 } else { -1.5 + 0.5 * topup_rate.ln() };
        let z_data = (data_base / 3000.0).ln() / 0.8;
        for svc in &world.catalog {
            let x = svc.intercept
                + svc.b_postpaid * f64::from(u8::from(postpaid))
                + svc.b_arpu * z_arpu
                + svc.b_data * z_data
                + svc.b_satisfaction * (f64::from(sat) - 3.0);
            let p_adopt = sigmoid(x);
            cols.a_id.push(id);
            cols.a_service.push(svc.service);
            cols.a_p.push(p_adopt);
            if !rng.random_bool(p_adopt) {
                continue;
            }
            let delay = Exp::new(1.0 / 120.0).expect("valid exp").sample(&mut rng) as u64;
            let s_start = signup + chrono::Days::new(delay);
            let stop = departure.unwrap_or(end);
            if s_start >= stop {
                continue;
            }
            let cancel = Exp::new(1.0 / 400.0).expect("valid exp").sample(&mut rng) as u64;
            let s_end = if rng.random_bool(0.2) && s_start + chrono::Days::new(cancel) < stop {
                Some(s_start + chrono::Days::new(cancel))
            } else {
                departure
            };
            cols.s_id.push(id);
            cols.s_service.push(svc.service);
            cols.s_start.push(days(s_start));
            cols.s_end.push(s_end.map(days));
        }

        // The future after the data, for customers the operator still counts at its end.
        let delay_days = if postpaid { 0 } else { world.prepaid_inactivity_days as u64 };
        let declared =
            departure.map(|d| if postpaid { d } else { last_activity.max(d) + chrono::Days::new(delay_days) });
        let future: Option<Future> = match declared {
            Some(d) if d < end => None,
            Some(d) => Some(future::pending(d, end)),
            None => {
                let now = Now { seed: p.seed, id, months, start, end, delay_days };
                Some(future::draw(&now, hazard))
            }
        };
        cols.g_future_churn.push(future.as_ref().and_then(|f| f.churn_date).map(days));
        for (k, column) in cols.g_true_p.iter_mut().enumerate() {
            column.push(future.as_ref().map(|f| f.p_churn[k]));
        }

        // What the operator records as churn.
        let (churn_date, reason) = match departure {
            None => (None, None),
            Some(d) if !postpaid => {
                let declared = last_activity.max(d) + chrono::Days::new(world.prepaid_inactivity_days as u64);
                if declared < end { (Some(declared), Some("inactive_90d")) } else { (None, None) }
            }
            Some(d) => {
                let m = month_index(start, d);
                let reason = if last_unpaid {
                    "non_payment"
                } else if contract > 0 && (m - signup_m) > 0 && i64::from(m - signup_m) % contract == 0 {
                    "contract_end"
                } else if rng.random_bool(ci.clamp(0.05, 0.95)) {
                    "ported_out"
                } else if sat <= 3 {
                    "dissatisfied"
                } else {
                    "moved"
                };
                (Some(d), Some(reason))
            }
        };
        cols.c_id.push(id);
        cols.c_signup.push(days(signup));
        cols.c_market.push(market.market_id.clone());
        cols.c_plan.push(if postpaid { "postpaid" } else { "prepaid" });
        cols.c_contract.push(if postpaid { Some(contract) } else { None });
        cols.c_churn.push(churn_date.map(days));
        cols.c_reason.push(reason);

        cols.g_id.push(id);
        cols.g_level.push(comp_level);
        cols.g_ci.push(ci);
        cols.g_sat.push(i64::from(sat));
        cols.g_base_hazard.push(base_hazard);
        cols.g_departure.push(departure.map(days));
        cols.g_exposure.push(exposure);
        cols.g_expected.push(expected);
    }
    frames(cols, curve)
}

fn frames(c: Cols, curve: [[(u64, f64); 5]; 3]) -> PolarsResult<ChunkFrames> {
    use loyalty_contract::col as k;
    let customers = frame(vec![
        col(k::CUSTOMER_ID, c.c_id),
        date_col(k::SIGNUP_DATE, c.c_signup)?,
        col(k::MARKET_ID, c.c_market),
        col(k::PLAN_TYPE, c.c_plan),
        col(k::CONTRACT_MONTHS, c.c_contract),
        opt_date_col(k::CHURN_DATE, c.c_churn)?,
        col(k::CHURN_REASON, c.c_reason),
    ])?;
    let billing = frame(vec![
        col(k::CUSTOMER_ID, c.b_id),
        date_col(k::BILL_MONTH, c.b_month)?,
        col(k::TOTAL_CHARGE, c.b_charge),
        col(k::COST, c.b_cost),
        col(k::VOICE_MINUTES, c.b_voice),
        col(k::DATA_MB, c.b_data),
        col(k::SMS_COUNT, c.b_sms),
        col(k::DISCOUNT, c.b_discount),
        col(k::AMOUNT_PAID, c.b_paid),
        col(k::DAYS_LATE, c.b_late),
    ])?;
    let services = frame(vec![
        col(k::CUSTOMER_ID, c.s_id),
        col(k::SERVICE, c.s_service),
        date_col(k::START_DATE, c.s_start)?,
        opt_date_col(k::END_DATE, c.s_end)?,
    ])?;
    let topups = frame(vec![col(k::CUSTOMER_ID, c.t_id), ts_col(k::TS, c.t_ts)?, col(k::AMOUNT, c.t_amount)])?;
    let interactions = frame(vec![
        col(k::CUSTOMER_ID, c.i_id),
        ts_col(k::TS, c.i_ts)?,
        col(k::CHANNEL, c.i_channel),
        col(k::KIND, c.i_kind),
        col(k::RESOLVED, c.i_resolved),
    ])?;
    let [a0, a1, a2, a3, a4, a5] = c.v_aspects;
    let surveys = frame(vec![
        col(k::CUSTOMER_ID, c.v_id.clone()),
        date_col(k::SURVEY_DATE, c.v_date.clone())?,
        col(k::OVERALL, c.v_overall.clone()),
        col(k::PRODUCT, a0),
        col(k::SERVICE_ASPECT, a1),
        col(k::RELATIONSHIP, a2),
        col(k::PRICE, a3),
        col(k::CONVENIENCE, a4),
        col(k::BRAND, a5),
        col(k::RECOMMEND, c.v_recommend),
    ])?;
    let referrals = frame(vec![
        col(k::CUSTOMER_ID, c.r_id),
        col(k::REFERRED_ID, c.r_referred),
        date_col(k::REFERRAL_DATE, c.r_date)?,
    ])?;
    let truth_customers = frame(vec![
        col(k::CUSTOMER_ID, c.g_id),
        col("competition_level", c.g_level),
        col(k::COMPETITION_INDEX, c.g_ci),
        col("satisfaction", c.g_sat),
        col("base_hazard_monthly", c.g_base_hazard),
        opt_date_col("departure_date", c.g_departure)?,
        col("exposure_months", c.g_exposure),
        col("expected_churns", c.g_expected),
        opt_date_col("future_churn_date", c.g_future_churn)?,
        col("true_p_churn_3m", c.g_true_p[0].clone()),
        col("true_p_churn_6m", c.g_true_p[1].clone()),
        col("true_p_churn_12m", c.g_true_p[2].clone()),
    ])?;
    let truth_adoption = frame(vec![col(k::CUSTOMER_ID, c.a_id), col(k::SERVICE, c.a_service), col("p_adopt", c.a_p)])?;
    let truth_surveys = frame(vec![
        col(k::CUSTOMER_ID, c.v_id),
        date_col(k::SURVEY_DATE, c.v_date)?,
        col(k::OVERALL, c.v_overall),
        col("competition_level", c.v_level),
        col("p_retained_true", c.v_truth_retained),
        col("observable", c.v_observable),
    ])?;
    Ok(ChunkFrames {
        customers,
        billing,
        services,
        topups,
        interactions,
        surveys,
        referrals,
        truth_customers,
        truth_adoption,
        truth_surveys,
        curve,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_points_split_the_normal_into_the_shares() {
        // The 6% and 18% quantiles of N(0,1) are -1.5548 and -0.9154.
        let cuts = cut_points(&[0.06, 0.12, 0.30, 0.34, 0.18], 1.0);
        assert!((cuts[0] + 1.5548).abs() < 1e-3, "{cuts:?}");
        assert!((cuts[1] + 0.9154).abs() < 1e-3, "{cuts:?}");
        assert_eq!(level(-2.0, &cuts), 1);
        assert_eq!(level(5.0, &cuts), 5);
    }

    #[test]
    fn contract_end_month_spikes() {
        let world = World::new(crate::GenParams::default());
        // Signed up in month 0 on a 12-month contract: month 12 ends the term.
        assert_eq!(multiplier(&world, true, 12, 0, 12), world.hazards.contract_end_multiplier);
        assert_eq!(multiplier(&world, true, 12, 0, 11), world.hazards.in_contract_multiplier);
        assert_eq!(multiplier(&world, true, 12, 0, 24), world.hazards.contract_end_multiplier);
        assert_eq!(multiplier(&world, false, 0, 0, 5), world.hazards.prepaid_multiplier);
    }
}
