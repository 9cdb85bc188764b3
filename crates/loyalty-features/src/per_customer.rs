//! Per-customer aggregations of the event tables, joined onto the active base.

use std::sync::Arc;

use chrono::{Months, NaiveDate};
use loyalty_contract::Table;
use loyalty_contract::col as c;
use loyalty_contract::labels::{label, labels, texts};
use polars::prelude::*;
use rayon::prelude::*;

use crate::billing_kernel::{self, BillingKernel, Slots};
use crate::leavers::{BILL_DAY_BEFORE_WINDOW, LAST_DAY, SilentPrepaid, TOPUP_DAY_BEFORE_WINDOW};
use crate::names as n;
use crate::remote::{AggregateRequest, Aggregator, conform};
use crate::topup_kernel::{self, TopupKernel};
use crate::transactions::DaySummaries;
use crate::{BillingEngine, FeatureError, FeatureParams, MarginBasis, Tables, epoch_days};
use loyalty_contract::FoldThread;
use loyalty_contract::partition::Slice;

/// year * 12 + month of a date expression (Int32).
pub(crate) fn month_num(e: Expr) -> Expr {
    loyalty_contract::dates::month_number_i32_expr(e)
}

/// Days since the epoch of a Date or Datetime expression.
pub(crate) fn day_num(e: Expr) -> Expr {
    e.cast(DataType::Date).cast(DataType::Int32)
}

/// Whole months from `a` to `b` (a date expression each), counting a month only once
/// its day-of-month is reached.
pub(crate) fn months_between(a: Expr, b: Expr) -> Expr {
    months_to(a, month_num(b.clone()), loyalty_contract::dates::day_of_month_expr(b))
}

/// [`months_between`] `a` and the day `b`.
pub(crate) fn months_until(a: Expr, b: NaiveDate) -> Expr {
    let b_month = loyalty_contract::dates::month_number(epoch_days(b)) as i32;
    months_to(a, lit(b_month), lit(chrono::Datelike::day(&b) as i32))
}

/// Whole months from `a` to the month number `b_month`, day `b_day` of it.
fn months_to(a: Expr, b_month: Expr, b_day: Expr) -> Expr {
    let day = loyalty_contract::dates::day_of_month_expr;
    b_month - month_num(a.clone()) - when(b_day.lt(day(a))).then(lit(1)).otherwise(lit(0))
}

fn f(e: Expr) -> Expr {
    e.cast(DataType::Float64)
}

fn count_if(cond: Expr) -> Expr {
    cond.fill_null(lit(false)).cast(DataType::Float64).sum()
}

fn ratio(num: Expr, den: Expr) -> Expr {
    when(den.clone().gt(lit(0.0))).then(num / den).otherwise(lit(NULL).cast(DataType::Float64))
}

/// slope = (n Sxy - Sx Sy) / (n Sxx - Sx^2); null with fewer than two points.
fn slope(prefix: &str) -> Expr {
    let g = |s: &str| col(format!("__{prefix}_{s}"));
    let den = g("n") * g("sxx") - g("sx") * g("sx");
    when(g("n").gt_eq(lit(2.0)).and(den.clone().gt(lit(1e-12))))
        .then((g("n") * g("sxy") - g("sx") * g("sy")) / den)
        .otherwise(lit(NULL).cast(DataType::Float64))
}

fn window_rows(known: LazyFrame, last_known: NaiveDate, params: &FeatureParams) -> LazyFrame {
    let usage = f(col(c::VOICE_MINUTES)).fill_null(lit(0.0))
        + f(col(c::DATA_MB)).fill_null(lit(0.0))
        + f(col(c::SMS_COUNT)).fill_null(lit(0.0))
        + col(c::TOTAL_CHARGE);
    let charge = col(c::TOTAL_CHARGE);
    let unpaid = col(c::DAYS_LATE)
        .is_null()
        .and(col(c::AMOUNT_PAID).is_not_null())
        .and(col(c::AMOUNT_PAID).lt(charge.clone()))
        .fill_null(lit(false));
    let late = col(c::DAYS_LATE).gt(lit(0)).fill_null(lit(false)).or(unpaid);
    let first_window_month = last_known.checked_sub_months(Months::new(11)).unwrap_or(last_known);
    // x = -k: whole months before the last known month (bill months are firsts of
    // months, so days / 30.4375 rounds to the exact count).
    let x = ((col(c::BILL_MONTH).cast(DataType::Int32) - lit(crate::epoch_days(last_known))).cast(DataType::Float64)
        / lit(30.4375))
    .round(0, RoundMode::HalfToEven);
    let known_f = |name: &str| col(name).is_not_null().cast(DataType::Float64);
    // Per-row terms are computed once; the group-by then only sums products. Every
    // row here is in the 12-month window.
    known
        .filter(col(c::BILL_MONTH).gt_eq(lit(first_window_month)))
        .select([
            col(c::CUSTOMER_ID),
            when(usage.gt(lit(0.0)))
                .then(col(c::BILL_MONTH))
                .otherwise(lit(NULL).cast(DataType::Date))
                .alias("__active"),
            x.clone().alias("__x"),
            x.clone().gt_eq(lit(-2.0)).cast(DataType::Float64).alias("__w3"),
            x.gt_eq(lit(-5.0)).cast(DataType::Float64).alias("__w6"),
            charge.clone().alias("__y"),
            (charge.clone() - col(c::COST)).fill_null(charge.clone() * lit(params.margin_rate)).alias("__margin"),
            col(c::DISCOUNT).fill_null(lit(0.0)).alias("__disc"),
            late.cast(DataType::Float64).alias("__late"),
            f(col(c::DAYS_LATE)).alias("__dl"),
            (charge.clone() - col(c::AMOUNT_PAID)).clip_min(lit(0.0)).fill_null(lit(0.0)).alias("__unpaid"),
            f(col(c::VOICE_MINUTES)).alias("__voice"),
            f(col(c::DATA_MB)).alias("__data"),
        ])
        .with_columns([
            (col("__w6") * known_f("__voice")).alias("__ok_voice"),
            (col("__w6") * known_f("__data")).alias("__ok_data"),
            (col("__w6") * known_f("__dl")).alias("__ok_late"),
            (col("__w3") * known_f("__data")).alias("__ok_data3"),
        ])
}

/// The reference billing plan: a Polars group-by producing the same intermediate
/// sums as `billing_kernel` (selected with `BillingEngine::Polars`; a test checks that
/// both agree). Per customer: the last known bill, the number of bills, and the sums
/// over windows of 3, 6 and 12 calendar months ending with the last month whose bill
/// is known at T (k = 0 is that month).
fn billing_sums_polars(known: LazyFrame, last_known: NaiveDate, params: &FeatureParams) -> LazyFrame {
    let history = known
        .clone()
        .group_by([col(c::CUSTOMER_ID)])
        .agg([col(c::BILL_MONTH).max().alias(n::LAST_BILL_MONTH), len().cast(DataType::Int64).alias(n::MONTHS_BILLED)]);
    let rows = window_rows(known, last_known, params);
    let s = |e: Expr, name: &str| e.sum().alias(name);
    let z = |name: &str| col(name).fill_null(lit(0.0));
    let mut aggs = vec![
        col("__active").max().alias("__last_active_bill"),
        s(col("__w3"), "__n3"),
        s(col("__y") * col("__w3"), "__charge3"),
        s(col("__margin") * col("__w3"), "__margin3"),
        s(col("__ok_data3"), "__data_n3"),
        s(z("__data") * col("__w3"), "__data3"),
        len().cast(DataType::Float64).alias("__n12"),
        s(col("__y"), "__charge12"),
        s(col("__y") * col("__y"), "__charge_sq12"),
        s(col("__disc"), "__discount12"),
        s(col("__late"), "__late12"),
        col("__dl").max().alias("__max_late"),
        col("__dl").count().cast(DataType::Float64).alias("__late_known12"),
        s(col("__unpaid"), n::UNPAID_AMOUNT_12M),
        s(col("__unpaid") * col("__w3"), "__unpaid3"),
    ];
    // OLS slope sums over the last 6 months; x = -k (0 for the last month).
    for (prefix, y, ok) in [
        ("charge", "__y", "__w6"),
        ("voice", "__voice", "__ok_voice"),
        ("data", "__data", "__ok_data"),
        ("late", "__dl", "__ok_late"),
    ] {
        aggs.push(s(col(ok), &format!("__{prefix}_n")));
        aggs.push(s(col("__x") * col(ok), &format!("__{prefix}_sx")));
        aggs.push(s(z(y) * col(ok), &format!("__{prefix}_sy")));
        aggs.push(s(col("__x") * z(y) * col(ok), &format!("__{prefix}_sxy")));
        aggs.push(s(col("__x") * col("__x") * col(ok), &format!("__{prefix}_sxx")));
    }
    let windows = rows.group_by([col(c::CUSTOMER_ID)]).agg(aggs);
    history.join(windows, [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Left))
}

/// The billing features from the per-customer sums (of either engine). A month
/// without a bill simply has no row, so "arpu_3m" is the mean over the customer's
/// bills in those three months.
fn billing_features(sums: LazyFrame, basis: MarginBasis) -> LazyFrame {
    let collected = ratio(col("__margin3") - col("__unpaid3").fill_null(lit(0.0)), col("__n3"));
    let margin = match basis {
        MarginBasis::Billed => ratio(col("__margin3"), col("__n3")),
        MarginBasis::Collected => collected.clone(),
    };
    sums.select([
        col(c::CUSTOMER_ID),
        col(n::LAST_BILL_MONTH),
        col(n::MONTHS_BILLED),
        col("__last_active_bill"),
        ratio(col("__charge3"), col("__n3")).alias(n::ARPU_3M),
        ratio(col("__charge12"), col("__n12")).alias(n::ARPU_12M),
        margin.alias(n::MARGIN_MONTHLY),
        collected.alias(n::MARGIN_COLLECTED_MONTHLY),
        col("__charge3").fill_null(lit(0.0)).alias(n::CHARGE_3M),
        col("__unpaid3").fill_null(lit(0.0)).alias(n::UNPAID_AMOUNT_3M),
        ratio(col("__data3"), col("__data_n3")).alias(n::DATA_MB_3M),
        slope("charge").alias(n::CHARGE_TREND),
        {
            let mean = ratio(col("__charge12"), col("__n12"));
            let var = (ratio(col("__charge_sq12"), col("__n12")) - mean.clone() * mean.clone()).clip_min(lit(0.0));
            ratio(var.sqrt(), mean)
        }
        .alias(n::CHARGE_VOLATILITY),
        ratio(col("__discount12"), col("__charge12") + col("__discount12")).alias(n::DISCOUNT_SHARE_12M),
        slope("voice").alias(n::VOICE_TREND),
        slope("data").alias(n::DATA_TREND),
        ratio(col("__late12"), col("__n12")).alias(n::LATE_PAYMENT_RATE_12M),
        // Null when no bill of the last 12 months says how late it was paid.
        when(col("__late_known12").gt(lit(0.0)))
            .then(col("__max_late"))
            .otherwise(lit(NULL).cast(DataType::Float64))
            .alias(n::MAX_DAYS_LATE_12M),
        col(n::UNPAID_AMOUNT_12M).fill_null(lit(0.0)),
        slope("late").alias(n::DAYS_LATE_TREND),
    ])
}

/// `lf` (with market_id, as text or categorical text) plus its market's
/// competition_index and competition_level (`unknown` without a markets table); row
/// order kept. The markets' ids are text: market_id joins them as text.
pub fn with_competition(lf: LazyFrame, tables: &Tables, params: &FeatureParams) -> LazyFrame {
    match tables.get(&Table::Markets) {
        Some(m) => lf
            .with_column(col(c::MARKET_ID).cast(DataType::String))
            .join(
                m.clone().select([col(c::MARKET_ID), col(c::COMPETITORS), col(c::COMPETITION_INDEX)]),
                [col(c::MARKET_ID)],
                [col(c::MARKET_ID)],
                keep_left_order(),
            )
            .with_column(
                competition_level(params.competition_index_cuts, params.competitors_cuts).alias(n::COMPETITION_LEVEL),
            )
            .drop(cols([c::COMPETITORS])),
        None => lf.with_columns([
            lit(NULL).cast(DataType::Float64).alias(c::COMPETITION_INDEX),
            label("unknown", &labels(&n::COMPETITION_LEVELS)).alias(n::COMPETITION_LEVEL),
        ]),
    }
}

fn competition_level(cuts_ci: [f64; 2], cuts_n: [i64; 2]) -> Expr {
    let level = |name: &str| label(name, &labels(&n::COMPETITION_LEVELS));
    let ci = col(c::COMPETITION_INDEX);
    let k = col(c::COMPETITORS);
    when(ci.clone().is_not_null())
        .then(
            when(ci.clone().lt(lit(cuts_ci[0])))
                .then(level("low"))
                .when(ci.lt(lit(cuts_ci[1])))
                .then(level("medium"))
                .otherwise(level("high")),
        )
        .when(k.clone().is_not_null())
        .then(
            when(k.clone().lt_eq(lit(cuts_n[0])))
                .then(level("low"))
                .when(k.lt_eq(lit(cuts_n[1])))
                .then(level("medium"))
                .otherwise(level("high")),
        )
        .otherwise(level("unknown"))
}

/// The columns of a one-row-per-customer frame placed at their customers' positions
/// in `base` (`slots`), null where a customer has no row, without the customer_id:
/// the placed columns added to `base` as they are made and their sources freed, so
/// the table grows by a few columns at a time, never by a copy of `df`.
fn align_into(base: &mut DataFrame, slots: &Slots, mut df: DataFrame) -> PolarsResult<()> {
    let idx = placement(slots, base.height(), &df)?;
    df.drop_in_place(c::CUSTOMER_ID)?;
    // As many columns at a time as there are threads (7 s on one thread at 10M
    // customers); each column goes as its placed copy is made.
    let mut columns = df.into_columns();
    let at_once = rayon::current_num_threads().max(1);
    while !columns.is_empty() {
        let some: Vec<Column> = columns.drain(..at_once.min(columns.len())).collect();
        let placed = some.into_par_iter().map(|column| column.take(&idx)).collect::<PolarsResult<Vec<_>>>()?;
        base.hstack_mut(&placed)?;
    }
    Ok(())
}

/// The rows of `df` whose customer is in the base (`slots`): the windows' aggregates
/// also count the customers who left by T, whose rows would only wait, with every
/// other partition's, until the frames are placed on the base.
fn in_base(df: DataFrame, slots: &Slots) -> PolarsResult<DataFrame> {
    let ids = df.column(c::CUSTOMER_ID)?.i64()?;
    let mask: BooleanChunked = ids.iter().map(|id| id.is_some_and(|id| slots.get(id).is_some())).collect();
    if mask.all() { Ok(df) } else { df.filter(&mask) }
}

/// For each row of the base (`slots`), the row of `df` with its customer, if any.
fn placement(slots: &Slots, height: usize, df: &DataFrame) -> PolarsResult<IdxCa> {
    let mut idx: Vec<Option<IdxSize>> = vec![None; height];
    for (row, id) in df.column(c::CUSTOMER_ID)?.i64()?.iter().enumerate() {
        if let Some(slot) = id.and_then(|id| slots.get(id)) {
            idx[slot] = Some(row as IdxSize);
        }
    }
    Ok(IdxCa::from_iter_options("__idx".into(), idx.into_iter()))
}

/// A left join that keeps the order of the left frame (the base, sorted by customer).
fn keep_left_order() -> JoinArgs {
    JoinArgs { maintain_order: MaintainOrderJoin::Left, ..JoinArgs::new(JoinType::Left) }
}

/// Collect the per-customer aggregates together on the streaming engine (one
/// execution, so the scans of different tables overlap). `sinks` are plans that end
/// in `sink_batches` and keep their own results.
fn collect_aggregates(aggregates: Vec<LazyFrame>, sinks: Vec<LazyFrame>) -> PolarsResult<Vec<DataFrame>> {
    let started = std::time::Instant::now();
    let count = aggregates.len();
    let plans = aggregates.into_iter().chain(sinks).map(|lf| lf.logical_plan).collect();
    let mut frames = LazyFrame::collect_all_with_engine(plans, Engine::Streaming, OptFlags::default())?;
    tracing::debug!("{} per-customer aggregates in {:.2}s", frames.len(), started.elapsed().as_secs_f64());
    frames.truncate(count);
    Ok(frames)
}

/// The aggregates of `plans` computed by `remote`, cast to the plans' schemas; the
/// billing sums turned into billing features as the local engines' are.
fn remote_aggregates(
    remote: &dyn Aggregator,
    mut plans: Vec<(Table, LazyFrame)>,
    params: &FeatureParams,
    window_start: chrono::NaiveDate,
) -> Result<Vec<DataFrame>, FeatureError> {
    let t = params.as_of;
    let request = AggregateRequest {
        as_of: t,
        last_known_bill_month: params.last_known_bill_month(),
        window_start,
        year_before: t.checked_sub_months(Months::new(12)).unwrap_or(t),
        margin_rate: params.margin_rate,
        tables: plans.iter().map(|(t, _)| *t).filter(|t| *t != Table::Billing).collect(),
    };
    let started = std::time::Instant::now();
    let mut got = remote.aggregate(&request)?;
    tracing::debug!("{} aggregates from {} in {:.2}s", plans.len(), remote.describe(), started.elapsed().as_secs_f64());
    let mut out = Vec::with_capacity(plans.len());
    for (table, plan) in plans.iter_mut() {
        let schema = plan.collect_schema()?;
        let df = got
            .take(*table)
            .ok_or_else(|| FeatureError::Remote(format!("{} returned no {table} aggregate", remote.describe())))?;
        let df = conform(df, &schema, table.name())?;
        out.push(match table {
            Table::Billing => billing_features(df.lazy(), params.margin_basis).collect()?,
            _ => df,
        });
    }
    Ok(out)
}

/// The per-customer aggregate plans of the tables present, in output order: the
/// billing plan (run by the kernel, or a Polars plan among `local`), top-ups,
/// interactions, surveys (on `remote` engines these four go to `remote`, for their
/// schemas), referrals and services.
struct Plans {
    local: Vec<LazyFrame>,
    remote: Vec<(Table, LazyFrame)>,
    /// The known billing rows, for the billing kernel.
    billing_kernel: Option<LazyFrame>,
    /// The top-ups up to T (customer_id, day, amount) and the window's first day
    /// excluded, for the top-up kernel.
    topup_kernel: Option<(LazyFrame, i32)>,
}

/// Fixed-point units of [`exact_sum`].
pub(crate) const FIXED_POINT: f64 = 1e9;

/// A value in [`exact_sum`]'s fixed point; None for a missing value (NaN: a null
/// amount), which a sum skips but a mean's row count does not.
pub(crate) fn fixed(v: f64) -> Option<i64> {
    v.is_finite().then(|| (v * FIXED_POINT).round_ties_even() as i64)
}

/// A sum in [`exact_sum`]'s fixed point as a float, as that expression gives it:
/// Polars divides a column by a number as a product with its reciprocal.
pub(crate) fn from_fixed(sum: i64) -> f64 {
    sum as f64 * (1.0 / FIXED_POINT)
}

/// The sum of a group's values in fixed point (exact to 1e-9, for magnitudes up to
/// 9e9), so it does not depend on the order the rows arrive in: the streaming engine
/// adds partial sums from its threads in whatever order they finish, float addition
/// is not associative, and the last bit of a float sum moved from run to run (and a
/// split of the booster on that value with it). Integer addition is associative.
pub(crate) fn exact_sum(e: Expr) -> Expr {
    from_fixed_sum(fixed_sum(e))
}

/// [`exact_sum`] before it turns into a float: partial sums of this add up exactly.
pub(crate) fn fixed_sum(e: Expr) -> Expr {
    (e * lit(FIXED_POINT)).round(0, RoundMode::HalfToEven).cast(DataType::Int64).sum()
}

/// A [`fixed_sum`] (or a sum of them) as the float [`exact_sum`] gives.
pub(crate) fn from_fixed_sum(sum: Expr) -> Expr {
    sum.cast(DataType::Float64) / lit(FIXED_POINT)
}

fn aggregate_plans(tables: &Tables, params: &FeatureParams, remote: bool) -> Plans {
    let t = params.as_of;
    let t_days = epoch_days(t);
    let t_12 = epoch_days(t.checked_sub_months(Months::new(12)).unwrap_or(t));
    let lkbm = params.last_known_bill_month();
    let mut plans = Plans { local: Vec::new(), remote: Vec::new(), billing_kernel: None, topup_kernel: None };
    let kernels = params.billing_engine == BillingEngine::Kernel && !remote;
    let push = |plans: &mut Plans, table: Table, plan: LazyFrame| {
        if remote { plans.remote.push((table, plan)) } else { plans.local.push(plan) }
    };
    let known = tables[&Table::Billing].clone().filter(col(c::BILL_MONTH).lt_eq(lit(lkbm)));
    match (params.billing_engine, remote) {
        (_, true) => push(&mut plans, Table::Billing, billing_sums_polars(known, lkbm, params)),
        (BillingEngine::Polars, false) => {
            plans.local.push(billing_features(billing_sums_polars(known, lkbm, params), params.margin_basis))
        }
        (BillingEngine::Kernel, false) => plans.billing_kernel = Some(known),
    }

    // Top-ups: frequency and last activity.
    if let Some(topups) = tables.get(&Table::Topups) {
        let day = day_num(col(c::TS));
        let in_window = day.clone().gt(lit(t_12));
        if kernels {
            let rows = topups.clone().filter(day.clone().lt_eq(lit(t_days))).select([
                col(c::CUSTOMER_ID),
                day.clone().alias(topup_kernel::DAY),
                col(c::AMOUNT).cast(DataType::Float64),
            ]);
            plans.topup_kernel = Some((rows, t_12));
        }
        let agg = if remote {
            topups.clone().filter(day.clone().lt_eq(lit(t_days)).and(in_window)).group_by([col(c::CUSTOMER_ID)]).agg([
                len().cast(DataType::Float64).alias(n::TOPUPS_12M),
                exact_sum(col(c::AMOUNT)).alias(n::TOPUP_AMOUNT_12M),
                day.max().alias("__last_topup_day"),
            ])
        } else {
            // The scan decodes every top-up whatever the filter: the ones before the
            // window also give the last top-up before it, which the leavers need of
            // the prepaid customers who fell silent (a second read of every top-up).
            let only = |cond: Expr, e: Expr, otherwise: Expr| when(cond).then(e).otherwise(otherwise);
            let no_day = || lit(NULL).cast(DataType::Int32);
            topups.clone().filter(day.clone().lt_eq(lit(t_days))).group_by([col(c::CUSTOMER_ID)]).agg([
                in_window.clone().cast(DataType::Float64).sum().alias(n::TOPUPS_12M),
                exact_sum(only(in_window.clone(), col(c::AMOUNT), lit(0.0))).alias(n::TOPUP_AMOUNT_12M),
                only(in_window.clone(), day.clone(), no_day()).max().alias("__last_topup_day"),
                only(in_window.not(), day, no_day()).max().alias(TOPUP_BEFORE_WINDOW),
            ])
        };
        if !kernels {
            push(&mut plans, Table::Topups, agg);
        }
    }

    // Care contacts in the last 12 months.
    if let Some(inter) = tables.get(&Table::Interactions) {
        let day = day_num(col(c::TS));
        let agg = inter
            .clone()
            .filter(day.clone().lt_eq(lit(t_days)).and(day.gt(lit(t_12))))
            .group_by([col(c::CUSTOMER_ID)])
            .agg([
                count_if(col(c::KIND).eq(lit("complaint"))).alias(n::COMPLAINTS_12M),
                len().cast(DataType::Float64).alias(n::CONTACTS_12M),
                count_if(col(c::RESOLVED).eq(lit(false))).alias(n::UNRESOLVED_12M),
                col(c::CHANNEL).n_unique().cast(DataType::Float64).alias(n::CHANNELS_USED_12M),
            ]);
        push(&mut plans, Table::Interactions, agg);
    }

    // The latest survey at or before T.
    if let Some(surveys) = tables.get(&Table::Surveys) {
        let known = surveys.clone().filter(col(c::SURVEY_DATE).lt_eq(lit(t)));
        let counts = known.clone().group_by([col(c::CUSTOMER_ID)]).agg([
            len().cast(DataType::Float64).alias(n::SURVEYS_ANSWERED),
            col(c::SURVEY_DATE).max().alias("__latest"),
        ]);
        // The latest survey's scores (several on the same day: the highest of each).
        let mut scores = vec![
            col(c::OVERALL).max().cast(DataType::Float64).alias(n::SURVEY_OVERALL),
            col(c::RECOMMEND).max().cast(DataType::Float64).alias(n::SURVEY_RECOMMEND),
        ];
        scores.extend(c::ASPECTS.iter().map(|a| col(*a).max().cast(DataType::Float64).alias(n::survey_aspect(a))));
        let latest = known
            .join(
                counts.clone(),
                [col(c::CUSTOMER_ID), col(c::SURVEY_DATE)],
                [col(c::CUSTOMER_ID), col("__latest")],
                JoinArgs::new(JoinType::Inner),
            )
            .group_by([col(c::CUSTOMER_ID)])
            .agg(scores);
        let agg = counts
            .with_column((lit(t_days) - day_num(col("__latest"))).cast(DataType::Float64).alias(n::SURVEY_AGE_DAYS))
            .drop(cols(["__latest"]))
            .join(latest, [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Left));
        push(&mut plans, Table::Surveys, agg);
    }

    // Referrals made.
    if let Some(refs) = tables.get(&Table::Referrals) {
        let agg = refs.clone().filter(col(c::REFERRAL_DATE).lt_eq(lit(t))).group_by([col(c::CUSTOMER_ID)]).agg([
            len().cast(DataType::Float64).alias(n::REFERRALS_MADE),
            count_if(day_num(col(c::REFERRAL_DATE)).gt(lit(t_12))).alias(n::REFERRALS_12M),
        ]);
        plans.local.push(agg);
    }

    // Optional services held at T, and what they earn.
    if let (Some(services), Some(catalog)) = (tables.get(&Table::Services), tables.get(&Table::ServiceCatalog)) {
        let agg = held_at(services.clone(), t)
            .join(
                catalog.clone().select([col(c::SERVICE), col(c::MONTHLY_MARGIN)]),
                [col(c::SERVICE)],
                [col(c::SERVICE)],
                JoinArgs::new(JoinType::Left),
            )
            .group_by([col(c::CUSTOMER_ID)])
            .agg([
                col(c::SERVICE).n_unique().cast(DataType::Float64).alias(n::SERVICES_HELD),
                exact_sum(col(c::MONTHLY_MARGIN)).alias(n::SERVICES_MARGIN_MONTHLY),
            ]);
        plans.local.push(agg);
    }
    plans
}

/// The active base at T with every per-customer aggregate joined on, assembled one
/// customer partition at a time: each partition's rows, sorted by customer, go through
/// `aside` (which may keep only some columns in memory) as soon as they are complete,
/// so the whole table with every column is never in memory at once. The kept rows are
/// then merged into customer order; with more than one partition, [`Assembled::from`]
/// says which partition each row came from.
pub(crate) fn assemble<E: From<FeatureError> + Send>(
    tables: &Tables,
    params: &FeatureParams,
    aside: &mut (impl FnMut(DataFrame) -> Result<DataFrame, E> + Send),
) -> Result<Assembled, E> {
    let pl = |e: PolarsError| E::from(FeatureError::from(e));
    let t = params.as_of;
    let t_days = epoch_days(t);
    let t_12 = epoch_days(t.checked_sub_months(Months::new(12)).unwrap_or(t));
    let lkbm = params.last_known_bill_month();
    let window_start = lkbm.checked_sub_months(Months::new(11)).unwrap_or(lkbm);

    // With a remote engine the billing, top-up, interaction and survey aggregates run
    // there (once, over every customer); the local plans of those tables are built
    // for their schemas only, and the engine's columns are cast to those types.
    let remote = params.engine.0.clone();
    let remote_frames = match &remote {
        Some(remote) => {
            let plans = aggregate_plans(tables, params, true);
            remote_aggregates(remote.as_ref(), plans.remote, params, window_start).map_err(E::from)?
        }
        None => Vec::new(),
    };
    // The local aggregates, one customer partition at a time: the partition's base,
    // the group-by state and the billing kernel hold one partition's customers, and
    // the partition's rows are finished and set aside before the next one starts. The
    // base is read per partition, not once and filtered: at 10M customers the whole
    // base (0.4 GB) stayed beside the last partition's work, at the stage's peak.
    let parts = tables.partition_count(active_customers(tables, t).map_err(pl)?, params.customers_per_partition);
    let (mut kept, mut silent) = (Vec::new(), Vec::new());
    let mut topup_days: Option<DaySummaries> = None;
    let mut keep = |(rows, gone, days): Placed| -> Result<(), E> {
        if let Some(days) = days {
            topup_days.get_or_insert_with(DaySummaries::default).append(days);
        }
        let started = std::time::Instant::now();
        let inputs = crate::value::row_inputs(&rows).map_err(pl)?;
        kept.push(aside(rows)?.hstack(inputs.columns()).map_err(pl)?);
        // The partition's placed rows (every column) are freed.
        loyalty_contract::memory::release();
        tracing::debug!("partition's rows set aside in {:.2}s", started.elapsed().as_secs_f64());
        silent.push(gone);
        Ok(())
    };
    // One partition at a time: its aggregates are placed on its base and set aside
    // before the next partition's scan starts. Placed beside that scan (a rayon join),
    // the features stage took 34 s at 10M customers where it takes 40, but the placed
    // rows and the next scan's group-by state were in memory together: 0.14 GiB more
    // at the stage's peak. Rows stay in partition order.
    let place = |aggregated: Aggregated| aggregated.placed(params, &remote_frames, (t_days, t_12));
    // The next partition's base is read beside the scan, where it ran between the
    // partitions with the cores half idle.
    let slices = Slice::split(parts);
    let inputs = |slice: Option<Slice>| -> PolarsResult<(Tables, DataFrame)> {
        let part_tables = crate::restricted(tables, slice);
        let part_base = base_at_t(&part_tables, params).collect()?;
        Ok((part_tables, part_base))
    };
    let mut next = slices.first().map(|&slice| inputs(slice)).transpose().map_err(pl)?;
    let mut after = slices.iter().skip(1).copied();
    while let Some((part_tables, part_base)) = next.take() {
        loyalty_contract::cancel::check().map_err(FeatureError::from)?;
        let ids: Vec<i64> = part_base
            .column(c::CUSTOMER_ID)
            .map_err(pl)?
            .i64()
            .map_err(pl)?
            .iter()
            .map(|v| v.unwrap_or(i64::MIN))
            .collect();
        let part = Partition { tables: &part_tables, params, ids, remote: remote.is_some() };
        let following = after.next();
        let (aggregated, upcoming) =
            rayon::join(|| part.aggregated(part_base, (lkbm, window_start)), || following.map(inputs).transpose());
        keep(place(aggregated.map_err(E::from)?).map_err(E::from)?)?;
        next = upcoming.map_err(pl)?;
    }
    if parts > 1 {
        tracing::debug!("per-customer aggregates in {parts} customer partitions");
    }
    let started = std::time::Instant::now();
    let merged = merge_by_customer(kept).map_err(pl)?;
    // The partitions' tables are freed: the whole one is built from here on.
    loyalty_contract::memory::release();
    let silent = SilentPrepaid {
        last_seen: merge_by_customer(silent.into_iter().map(|s| s.last_seen).collect()).map_err(pl)?.0,
    };
    tracing::debug!("assembled {} customers in {:.2}s", merged.0.height(), started.elapsed().as_secs_f64());
    Ok(Assembled { table: merged.0, silent, from: (parts > 1).then_some(merged.1), topup_days })
}

/// The customers active at T (signed up by T, not churned by T), counted.
fn active_customers(tables: &Tables, t: NaiveDate) -> PolarsResult<u64> {
    let count = tables[&Table::Customers]
        .clone()
        .filter(loyalty_contract::dates::active_at(t))
        .select([len().cast(DataType::UInt64).alias("n")])
        .collect()?;
    Ok(count.column("n")?.u64()?.get(0).unwrap_or(0))
}

/// The base of `tables` at T: its customers signed up by T and not churned by T (a
/// churn_date after T is not known at T), sorted by customer (every aggregate is
/// placed in this order), with tenure, competition, and constant columns for the
/// tables the dataset does not have.
fn base_at_t(tables: &Tables, params: &FeatureParams) -> LazyFrame {
    let t = params.as_of;
    let customers = tables[&Table::Customers]
        .clone()
        .filter(loyalty_contract::dates::active_at(t))
        .sort([c::CUSTOMER_ID], SortMultipleOptions::default());
    let mut base =
        customers.with_columns([months_until(col(c::SIGNUP_DATE), t).cast(DataType::Int64).alias(n::TENURE_MONTHS)]);
    base = with_competition(base, tables, params);
    // The plan and market as categorical text: four bytes a customer in the table at
    // T, where text takes a 16-byte view.
    base = base.with_columns([col(c::PLAN_TYPE).cast(texts()), col(c::MARKET_ID).cast(texts())]);
    // Constant columns for the tables the dataset does not have.
    if !tables.contains_key(&Table::Topups) {
        base = base.with_columns([
            lit(0.0).alias(n::TOPUPS_12M),
            lit(0.0).alias(n::TOPUP_AMOUNT_12M),
            lit(NULL).cast(DataType::Int32).alias("__last_topup_day"),
        ]);
    }
    if !tables.contains_key(&Table::Interactions) {
        base = base.with_columns(
            [n::COMPLAINTS_12M, n::CONTACTS_12M, n::UNRESOLVED_12M, n::CHANNELS_USED_12M].map(|x| lit(0.0).alias(x)),
        );
    }
    if !tables.contains_key(&Table::Surveys) {
        let mut survey_cols = vec![n::SURVEY_OVERALL.to_string(), n::SURVEY_RECOMMEND.to_string()];
        survey_cols.extend(c::ASPECTS.iter().map(|a| n::survey_aspect(a)));
        base = base.with_columns([
            lit(0.0).alias(n::SURVEYS_ANSWERED),
            lit(NULL).cast(DataType::Float64).alias(n::SURVEY_AGE_DAYS),
        ]);
        base = base.with_columns(
            survey_cols.iter().map(|x| lit(NULL).cast(DataType::Float64).alias(x.as_str())).collect::<Vec<_>>(),
        );
    }
    if !tables.contains_key(&Table::Referrals) {
        base = base.with_columns([lit(0.0).alias(n::REFERRALS_MADE), lit(0.0).alias(n::REFERRALS_12M)]);
    }
    if !(tables.contains_key(&Table::Services) && tables.contains_key(&Table::ServiceCatalog)) {
        base = base.with_columns([lit(0.0).alias(n::SERVICES_HELD), lit(0.0).alias(n::SERVICES_MARGIN_MONTHLY)]);
    }
    base
}

/// What [`assemble`] gives.
pub(crate) struct Assembled {
    /// The kept columns of the active base, sorted by customer_id.
    pub table: DataFrame,
    pub silent: SilentPrepaid,
    /// With more than one partition: the partition (in [`Slice::split`] order) each row
    /// of `table` came from, in that partition's order (by customer_id).
    pub from: Option<Vec<u32>>,
    /// The BG/NBD periods at T from the top-up kernel, when asked for
    /// (`FeatureParams::topup_days`).
    pub topup_days: Option<DaySummaries>,
}

/// `parts` (each sorted by customer_id, customers in one part only) as one frame sorted
/// by customer_id, with the part each row came from. Column by column: the peak is the
/// parts plus two columns per thread (a column made one chunk, and its gathered copy).
fn merge_by_customer(parts: Vec<DataFrame>) -> PolarsResult<(DataFrame, Vec<u32>)> {
    let ids = parts
        .iter()
        .map(|part| Ok(part.column(c::CUSTOMER_ID)?.i64()?.iter().map(|v| v.unwrap_or(i64::MIN)).collect()))
        .collect::<PolarsResult<Vec<Vec<i64>>>>()?;
    let (order, from) = merged_order(&ids);
    drop(ids);
    let mut all: Option<DataFrame> = None;
    for part in parts {
        match all.as_mut() {
            Some(all) => {
                all.vstack_mut_owned(part)?;
            }
            None => all = Some(part),
        }
    }
    let Some(all) = all else { return Ok((DataFrame::empty(), from)) };
    if order.iter().enumerate().all(|(i, &o)| i as IdxSize == o) {
        return Ok((all, from));
    }
    let idx = IdxCa::from_vec("__idx".into(), order);
    let height = all.height();
    // A column's gather runs on one thread: the columns go side by side (at 10M
    // customers the merge took 1.85 s on 1.1 of the two cores). Each column is made one
    // chunk first: a gather from the parts' chunks looks up every row's chunk. The
    // parts' copy of each column is handed back as soon as it is gathered: held until
    // the end, the whole table was in memory twice.
    let columns = all
        .into_columns()
        .into_par_iter()
        .map(|column| {
            let gathered = column.rechunk().take(&idx);
            drop(column);
            loyalty_contract::memory::release();
            gathered
        })
        .collect::<PolarsResult<Vec<_>>>()?;
    Ok((DataFrame::new(height, columns)?, from))
}

/// The rows of the sorted runs `ids` (each ascending, no id in two runs) in ascending
/// order, as indices into the runs laid end to end, and the run each came from: a
/// k-way merge, each row read once in sequence, where a sort of every row compared
/// rows scattered over the whole table.
fn merged_order(ids: &[Vec<i64>]) -> (Vec<IdxSize>, Vec<u32>) {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let total: usize = ids.iter().map(Vec::len).sum();
    let mut offsets = Vec::with_capacity(ids.len());
    let mut at = 0;
    for run in ids {
        offsets.push(at as IdxSize);
        at += run.len();
    }
    let (mut order, mut from) = (Vec::with_capacity(total), Vec::with_capacity(total));
    // (next id, run, its position in the run), smallest id on top.
    let mut heads: BinaryHeap<Reverse<(i64, u32, usize)>> = ids
        .iter()
        .enumerate()
        .filter(|(_, run)| !run.is_empty())
        .map(|(k, run)| Reverse((run[0], k as u32, 0)))
        .collect();
    while let Some(mut head) = heads.peek_mut() {
        let Reverse((_, k, i)) = *head;
        order.push(offsets[k as usize] + i as IdxSize);
        from.push(k);
        let run = &ids[k as usize];
        match run.get(i + 1) {
            Some(&next) => *head = Reverse((next, k, i + 1)),
            None => {
                std::collections::binary_heap::PeekMut::pop(head);
            }
        }
    }
    (order, from)
}

/// One customer partition of [`assemble`].
struct Partition<'a> {
    /// The tables restricted to the partition's customers.
    tables: &'a Tables,
    params: &'a FeatureParams,
    /// The partition's customers of the base, in the base's order.
    ids: Vec<i64>,
    remote: bool,
}

/// A partition's rows of the active base with every aggregate placed on them, its
/// prepaid customers who fell silent, and its BG/NBD periods at T when asked for.
type Placed = (DataFrame, SilentPrepaid, Option<DaySummaries>);

impl Partition<'_> {
    /// The partition's aggregates, read in one execution of every plan with the
    /// kernels fed by it, not yet placed on `base`.
    fn aggregated(
        self,
        base: DataFrame,
        (lkbm, window_start): (NaiveDate, NaiveDate),
    ) -> Result<Aggregated, FeatureError> {
        let Partition { tables, params, ids, remote } = self;
        // One index of the partition's customers for both kernels and the placing.
        let slots = Arc::new(Slots::new(&ids));
        let customers = ids.len();
        let plans = aggregate_plans(tables, params, remote);
        // The kernels fold on threads of their own, fed by the execution of every plan.
        let mut sinks = Vec::new();
        let topups = match plans.topup_kernel {
            Some((rows, window_after)) => {
                let kernel = TopupKernel::new(ids, slots.clone(), window_after, params.topup_days);
                let kernel = FoldThread::start("topup-kernel", kernel, |k, df| k.update(df))?;
                sinks.push(kernel.sink(rows)?);
                Some(kernel)
            }
            None => None,
        };
        let billing = match plans.billing_kernel {
            Some(known) => {
                let kernel = BillingKernel::new(customers, slots.clone(), lkbm, window_start, params);
                let kernel = FoldThread::start("billing-kernel", kernel, |k, df| k.update(df))?;
                sinks.push(kernel.sink(billing_kernel::input(known))?);
                Some(kernel)
            }
            None => None,
        };
        let frames = match collect_aggregates(plans.local, sinks) {
            Ok(frames) => frames,
            Err(e) => {
                // A kernel's own error before the plans' (which is then that it stopped them).
                topups.map(FoldThread::finish).transpose()?;
                billing.map(FoldThread::finish).transpose()?;
                return Err(e.into());
            }
        };
        Ok(Aggregated { base, slots, frames, topups, billing })
    }
}

/// One partition's aggregates as [`Partition::aggregated`] read them: the plans'
/// frames, each keyed by customer, the kernels (which may still be folding the last
/// batches of the scan: a kernel's thread runs behind it), and the partition's base.
struct Aggregated {
    base: DataFrame,
    slots: Arc<Slots>,
    frames: Vec<DataFrame>,
    topups: Option<FoldThread<TopupKernel>>,
    billing: Option<FoldThread<BillingKernel>>,
}

impl Aggregated {
    /// Every aggregate (the remote engine's first, then the billing kernel's, the
    /// top-up kernel's and the plans', in that order) placed on the base, and the
    /// partition finished ([`finished`]).
    fn placed(
        self,
        params: &FeatureParams,
        remote_frames: &[DataFrame],
        (t_days, t_12): (i32, i32),
    ) -> Result<Placed, FeatureError> {
        let started = std::time::Instant::now();
        let Aggregated { mut base, slots, frames, topups, billing } = self;
        let (topups, billing) =
            (topups.map(FoldThread::finish).transpose()?, billing.map(FoldThread::finish).transpose()?);
        let got = frames.into_iter().map(|df| in_base(df, &slots)).collect::<PolarsResult<Vec<_>>>()?;
        // The kernels' results, made side by side (at one partition nothing else runs
        // beside the placing).
        let (topup_frames, billing) = rayon::join(
            || topups.map(|kernel| topup_frames(kernel, &base, t_days)).transpose(),
            || billing.map(|kernel| kernel.features(params.margin_basis)).transpose(),
        );
        let (topup_days, topup_frame) = topup_frames?.unzip();
        let topup_days = topup_days.flatten();
        // The remote tables (billing, top-ups, interactions, surveys) come first, then
        // the billing kernel's columns, the top-up kernel's and the plans': the same
        // columns in the same order whichever engine made them.
        for df in remote_frames {
            align_into(&mut base, &slots, in_base(df.clone(), &slots)?)?;
        }
        if let Some(columns) = billing? {
            // One row per customer of the base, in its order (the kernel's slots are its rows).
            if columns.iter().any(|column| column.len() != base.height()) {
                return Err(
                    polars_err!(ComputeError: "the billing kernel's rows are not the partition's customers").into()
                );
            }
            base.hstack_mut(&columns)?;
        }
        for df in topup_frame.into_iter().chain(got) {
            align_into(&mut base, &slots, df)?;
        }
        let (rows, silent) = finished(base, params, t_days, t_12)?;
        tracing::debug!("aggregates placed in {:.2}s", started.elapsed().as_secs_f64());
        Ok((rows, silent, topup_days))
    }
}

/// The top-up kernel's frame (one row per customer with a top-up) and, when it kept
/// them, its customers' BG/NBD periods at T.
fn topup_frames(
    mut kernel: TopupKernel,
    base: &DataFrame,
    t_days: i32,
) -> PolarsResult<(Option<DaySummaries>, DataFrame)> {
    let days = kernel.days().map(|days| DaySummaries::of(base, &days, t_days)).transpose()?;
    Ok((days, kernel.finish("__last_topup_day", TOPUP_BEFORE_WINDOW)?))
}

/// A partition's base with its aggregates placed: the zero fills, the derived columns,
/// and the customers active at T (with the prepaid ones who fell silent).
fn finished(
    mut base: DataFrame,
    params: &FeatureParams,
    t_days: i32,
    t_12: i32,
) -> PolarsResult<(DataFrame, SilentPrepaid)> {
    // Last activity: a bill with usage (its month's last day, at most T) or a top-up.
    let bill_activity = day_num(col("__last_active_bill").dt().month_end()).clip_max(lit(t_days));
    let last_activity = polars::lazy::dsl::max_horizontal([bill_activity, col("__last_topup_day")])?;
    let zero_filled = [
        n::MONTHS_BILLED,
        n::TOPUPS_12M,
        n::TOPUP_AMOUNT_12M,
        n::COMPLAINTS_12M,
        n::CONTACTS_12M,
        n::UNRESOLVED_12M,
        n::CHANNELS_USED_12M,
        n::SURVEYS_ANSWERED,
        n::REFERRALS_MADE,
        n::REFERRALS_12M,
        n::SERVICES_HELD,
        n::SERVICES_MARGIN_MONTHLY,
        n::UNPAID_AMOUNT_12M,
        n::UNPAID_AMOUNT_3M,
        n::CHARGE_3M,
    ];
    // The table is the size of the whole output here (gigabytes at 10M customers):
    // the zero fills replace their columns one at a time, the new columns are computed
    // on their own and put in place, and the filter runs one column at a time, so that
    // no step holds two copies of the table (or of the fifteen filled columns).
    // Activity is looked for in the last 12 months: without any, recency counts from
    // the window's start (or signup, if later).
    let recency = (lit(t_days)
        - last_activity
            .clone()
            .fill_null(polars::lazy::dsl::max_horizontal([day_num(col(c::SIGNUP_DATE)), lit(t_12)])?))
    .cast(DataType::Float64);
    for name in zero_filled {
        let filled = base.clone().lazy().select([col(name).fill_null(lit(0))]).collect()?;
        base.with_column(filled.column(name)?.clone())?;
    }
    let derived = base
        .clone()
        .lazy()
        .with_column(recency.alias(n::RECENCY_DAYS))
        .select([
            col(n::RECENCY_DAYS),
            (col(n::TOPUPS_12M) / f(col(n::TENURE_MONTHS).clip(lit(1), lit(12)))).alias(n::TOPUPS_PER_MONTH),
            when(col(c::CONTRACT_MONTHS).gt(lit(0)))
                .then(col(c::CONTRACT_MONTHS) - col(n::TENURE_MONTHS) % col(c::CONTRACT_MONTHS))
                .otherwise(lit(NULL).cast(DataType::Int64))
                .alias(n::MONTHS_TO_CONTRACT_END),
            // Active at T: not churned by T (filtered above), and a prepaid customer
            // has been active within `prepaid_inactivity_days` (a churn_date after T
            // is not known at T, so it cannot vouch for an inactive prepaid customer).
            col(c::PLAN_TYPE)
                .neq(lit("prepaid"))
                .or(col(n::RECENCY_DAYS).lt_eq(lit(params.prepaid_inactivity_days as f64)))
                .alias("__active"),
        ])
        .collect()?;
    let mut derived = derived.into_columns();
    let active = derived.pop().ok_or_else(|| polars_err!(ComputeError: "no activity mask"))?;
    let active = active.bool()?.clone();
    let silent = silent_prepaid(&base, &active, last_activity, t_days)?;
    // churn_date and churn_reason are after T for every active customer: leakage.
    let drop = ["__last_active_bill", "__last_topup_day", BILL_BEFORE_WINDOW, TOPUP_BEFORE_WINDOW];
    for name in drop.into_iter().chain([c::CHURN_DATE, c::CHURN_REASON]) {
        if base.get_column_index(name).is_some() {
            base.drop_in_place(name)?;
        }
    }
    for column in derived {
        base.with_column(column)?;
    }
    Ok((filter_by_column(base, &active)?, silent))
}

/// The billing kernel's last bill month with usage before the 12-month window.
pub(crate) const BILL_BEFORE_WINDOW: &str = "__last_active_bill_before";
/// The last top-up day before the 12-month window (local top-up aggregates only).
const TOPUP_BEFORE_WINDOW: &str = "__last_topup_before";

/// The customers of `base` that `active` drops (prepaid customers silent for too long),
/// with `last_activity` (their last day of activity in the window) and, where the
/// billing kernel found it, the last day of their bills with usage before the window.
fn silent_prepaid(
    base: &DataFrame,
    active: &BooleanChunked,
    last_activity: Expr,
    t_days: i32,
) -> PolarsResult<SilentPrepaid> {
    let mut names = vec![c::CUSTOMER_ID, "__last_active_bill", "__last_topup_day"];
    let mut out = vec![col(c::CUSTOMER_ID), last_activity.cast(DataType::Int32).alias(LAST_DAY)];
    if base.get_column_index(BILL_BEFORE_WINDOW).is_some() {
        names.push(BILL_BEFORE_WINDOW);
        let day = day_num(col(BILL_BEFORE_WINDOW).dt().month_end()).clip_max(lit(t_days));
        out.push(day.cast(DataType::Int32).alias(BILL_DAY_BEFORE_WINDOW));
    }
    if base.get_column_index(TOPUP_BEFORE_WINDOW).is_some() {
        names.push(TOPUP_BEFORE_WINDOW);
        out.push(col(TOPUP_BEFORE_WINDOW).cast(DataType::Int32).alias(TOPUP_DAY_BEFORE_WINDOW));
    }
    let dropped = base.select(names)?.filter(&!active)?;
    Ok(SilentPrepaid { last_seen: dropped.lazy().select(out).collect()? })
}

/// `df` filtered by `mask` one column at a time, each input column freed as its
/// filtered copy is made: the peak is the table plus one column, where
/// `DataFrame::filter` holds the table twice.
pub(crate) fn filter_by_column(df: DataFrame, mask: &BooleanChunked) -> PolarsResult<DataFrame> {
    let height = mask.sum().unwrap_or(0) as usize;
    let columns = df.into_columns().into_iter().map(|column| column.filter(mask)).collect::<PolarsResult<Vec<_>>>()?;
    DataFrame::new(height, columns)
}

/// Services rows held at the end of day T.
pub(crate) fn held_at(services: LazyFrame, t: NaiveDate) -> LazyFrame {
    services.filter(loyalty_contract::dates::held_at(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_order_interleaves_the_runs_by_id() {
        let runs = vec![vec![2, 5, 9], vec![], vec![1, 3, 4, 10], vec![7]];
        let (order, from) = merged_order(&runs);
        // The runs end to end: 2 5 9 | 1 3 4 10 | 7 at 0-2, 3-6, 7.
        assert_eq!(order, vec![3, 0, 4, 5, 1, 7, 2, 6]);
        assert_eq!(from, vec![2, 0, 2, 2, 0, 3, 0, 2]);
        assert_eq!(merged_order(&[]), (vec![], vec![]));
    }

    #[test]
    fn merged_parts_are_the_rows_sorted_by_customer_with_their_part() {
        let part = |ids: &[i64], tag: &str| {
            let values: Vec<Option<String>> =
                ids.iter().map(|id| (id % 3 != 0).then(|| format!("{tag}{id}"))).collect();
            df!(c::CUSTOMER_ID => ids, "v" => values, "x" => ids.iter().map(|&id| id as f64 / 2.0).collect::<Vec<_>>())
                .unwrap()
        };
        let parts = vec![part(&[4, 8, 15], "a"), part(&[1, 16], "b"), part(&[2, 3, 23, 42], "c")];
        let (merged, from) = merge_by_customer(parts).unwrap();
        let ids: Vec<i64> = merged.column(c::CUSTOMER_ID).unwrap().i64().unwrap().into_no_null_iter().collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 8, 15, 16, 23, 42]);
        assert_eq!(from, vec![1, 2, 2, 0, 0, 0, 1, 2, 2]);
        let v: Vec<Option<&str>> = merged.column("v").unwrap().str().unwrap().iter().collect();
        assert_eq!(v, vec![Some("b1"), Some("c2"), None, Some("a4"), Some("a8"), None, Some("b16"), Some("c23"), None]);
        let x: Vec<f64> = merged.column("x").unwrap().f64().unwrap().into_no_null_iter().collect();
        assert_eq!(x, ids.iter().map(|&id| id as f64 / 2.0).collect::<Vec<_>>());
        // One part, or parts already in order, come back as they are.
        let (one, from) = merge_by_customer(vec![part(&[5, 6], "a"), part(&[7], "b")]).unwrap();
        assert_eq!(one.height(), 3);
        assert_eq!(from, vec![0, 0, 1]);
    }
}
