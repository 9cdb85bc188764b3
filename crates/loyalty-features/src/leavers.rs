//! Who left, when, and why: observed churn dates and prepaid customers the data never
//! declared gone, churn reasons sorted into classes, and the value each leaver took
//! (and each joiner brought) measured on their bills.

use chrono::{Datelike, NaiveDate};
use loyalty_contract::labels::{strs, texts};
use loyalty_contract::{Table, col as c, collect_streaming};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::per_customer::{day_num, fixed_sum, from_fixed_sum};
use crate::{FeatureParams, Tables, names as n};

/// Whether a churn_date was recorded or inferred from prepaid inactivity.
pub const CHURN_INFERRED: &str = "churn_inferred";
/// The class of a churn reason: `controllable`, `uncontrollable`, `involuntary`, `unknown`.
pub const REASON_CLASS: &str = "reason_class";
/// The reason given to a prepaid leaver the data never declared gone.
pub const INFERRED_REASON: &str = "inactive_inferred";
/// The last day a leaver was active (the churn_date, or for prepaid the start of the
/// silence that led to it).
pub const ACTIVE_UNTIL: &str = "active_until";
/// In [`bill_values`]' people: sum every bill of this customer, not only the windows.
pub const WHOLE_HISTORY: &str = "whole_history";
pub const CLASSES: [&str; 4] = ["controllable", "uncontrollable", "involuntary", "unknown"];

/// How churn reason codes map to classes. Codes are matched without regard to case
/// or surrounding blanks; a code in no list, and a missing reason, are `unknown`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReasonMap {
    /// Reasons the operator could have acted on (service, price, competition).
    pub controllable: Vec<String>,
    /// Reasons outside the operator's reach (moved away, died, business closed).
    pub uncontrollable: Vec<String>,
    /// The operator ended the relationship (non-payment, fraud).
    pub involuntary: Vec<String>,
    /// Classes the win-back list leaves out.
    pub winback_excludes: Vec<String>,
}

impl Default for ReasonMap {
    fn default() -> Self {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        Self {
            controllable: v(&[
                "dissatisfied",
                "ported_out",
                "competitor",
                "price",
                "service",
                "coverage",
                "contract_end",
                "inactive_90d",
                INFERRED_REASON,
            ]),
            uncontrollable: v(&["moved", "relocation", "deceased", "death", "business_closed"]),
            involuntary: v(&["non_payment", "nonpayment", "fraud", "bad_debt", "collections"]),
            winback_excludes: v(&["uncontrollable", "involuntary"]),
        }
    }
}

impl ReasonMap {
    /// A code listed twice, or an excluded class that does not exist, is an error.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashMap::new();
        for (class, codes) in self.lists() {
            for code in codes {
                if let Some(other) = seen.insert(code.trim().to_lowercase(), class) {
                    return Err(format!("churn reason `{code}` is listed as both {other} and {class}"));
                }
            }
        }
        match self.winback_excludes.iter().find(|x| !CLASSES.contains(&x.as_str())) {
            Some(x) => Err(format!("winback_excludes holds `{x}`: use {}", CLASSES.join(", "))),
            None => Ok(()),
        }
    }

    fn lists(&self) -> [(&'static str, &Vec<String>); 3] {
        [
            ("controllable", &self.controllable),
            ("uncontrollable", &self.uncontrollable),
            ("involuntary", &self.involuntary),
        ]
    }

    /// The class of the reason in `reason`: its code trimmed and in lower case, as
    /// listed (the first list wins), or `unknown`. Each distinct code is classified
    /// once: leavers are millions and their codes a handful.
    pub fn class_of(&self, reason: Expr) -> Expr {
        let mut classes: std::collections::HashMap<String, &'static str> = std::collections::HashMap::new();
        for (class, codes) in self.lists() {
            for code in codes {
                classes.entry(code.trim().to_lowercase()).or_insert(class);
            }
        }
        reason.map(
            move |column| {
                let mut seen: std::collections::HashMap<&str, &'static str> = std::collections::HashMap::new();
                let class = |code: &str| -> &'static str {
                    classes.get(&code.trim().to_lowercase()).copied().unwrap_or(UNKNOWN_CLASS)
                };
                let out: StringChunked = strs(&column)?
                    .map(|code| {
                        Some(code.map_or(UNKNOWN_CLASS, |code| *seen.entry(code).or_insert_with(|| class(code))))
                    })
                    .collect();
                out.with_name(column.name().clone()).into_column().cast(&texts())
            },
            |_, field| Ok(Field::new(field.name().clone(), texts())),
        )
    }
}

/// The class of a reason code no list holds.
const UNKNOWN_CLASS: &str = "unknown";

/// The column of a customer's last day of activity by T, in days since the epoch.
pub const LAST_DAY: &str = "__last_day";

/// The column of the last day of a customer's bills with usage before the features'
/// window (at most T), in days since the epoch.
pub const BILL_DAY_BEFORE_WINDOW: &str = "__bill_day_before_window";

/// The column of the last day of a customer's top-ups before the features' window.
pub const TOPUP_DAY_BEFORE_WINDOW: &str = "__topup_day_before_window";

/// The prepaid customers without a churn_date by T who fell silent for longer than
/// `prepaid_inactivity_days`, as the features at T found them: customer_id and
/// `__last_day`, their last day of activity in the features' 12-month window (null:
/// none in it). Where it is known, it is their last day of activity ever: the window
/// ends at T, and a bill month in it ends after any top-up before it. [`analyse`]
/// then reads the event tables only for the silent customers it does not know, and
/// of those only the ones the features did not read before the window too:
/// `__bill_day_before_window` (the last day of their bills with usage before the
/// window; null: none) and `__topup_day_before_window` (of their top-ups), each
/// present when the features found it.
#[derive(Debug, Clone)]
pub struct SilentPrepaid {
    pub last_seen: DataFrame,
}

/// Every customer who left by T, one row each: customer_id, plan_type, market_id,
/// signup_date, churn_date, churn_inferred, churn_reason, reason_class, active_until.
/// `active_ids` holds the customers active at T (the feature table's ids): a prepaid
/// customer without a churn_date by T who is not among them fell silent for longer than
/// `prepaid_inactivity_days`, and counts as gone from the day that window ran out.
pub fn leavers(
    tables: &Tables,
    params: &FeatureParams,
    active_ids: &Column,
    reasons: &ReasonMap,
) -> PolarsResult<DataFrame> {
    leavers_among(&customer_columns(tables)?, tables, params, active_ids, reasons, None)
}

/// The customers table's columns that [`leavers`] and the base movement read, once;
/// its text as categorical text (every customer's: 0.35 GB less at 10M customers).
fn customer_columns(tables: &Tables) -> PolarsResult<DataFrame> {
    collect_streaming(tables[&Table::Customers].clone().select([
        col(c::CUSTOMER_ID),
        col(c::PLAN_TYPE).cast(texts()),
        col(c::MARKET_ID).cast(texts()),
        col(c::SIGNUP_DATE),
        col(c::CHURN_DATE),
        col(c::CHURN_REASON).cast(texts()),
    ]))
}

/// [`leavers`] of `customers` (from [`customer_columns`]), with the last activity of
/// the silent prepaid customers the features found in `known`.
fn leavers_among(
    customers: &DataFrame,
    tables: &Tables,
    params: &FeatureParams,
    active_ids: &Column,
    reasons: &ReasonMap,
    known: Option<&SilentPrepaid>,
) -> PolarsResult<DataFrame> {
    let t = params.as_of;
    let wait = params.prepaid_inactivity_days;
    let prepaid = col(c::PLAN_TYPE).eq(lit("prepaid"));
    let observed = customers.clone().lazy().filter(col(c::CHURN_DATE).lt_eq(lit(t))).with_columns([
        lit(false).alias(CHURN_INFERRED),
        when(prepaid.clone())
            .then(col(c::CHURN_DATE) - lit(chrono::TimeDelta::days(wait)))
            .otherwise(col(c::CHURN_DATE))
            .alias(ACTIVE_UNTIL),
    ]);
    let active = DataFrame::new_infer_height(vec![active_ids.clone().with_name(c::CUSTOMER_ID.into())])?;
    let silent = customers
        .clone()
        .lazy()
        .filter(loyalty_contract::dates::active_at(t).and(prepaid))
        .join(active.lazy(), [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Anti))
        .collect()?;
    let last = match known {
        Some(known) => last_activity_known(tables, params, silent.column(c::CUSTOMER_ID)?, known)?,
        None => last_activity(tables, params, silent.column(c::CUSTOMER_ID)?, true, true)?,
    };
    let inferred = silent
        .lazy()
        .join(last.lazy(), [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Left))
        .with_column(col(LAST_DAY).fill_null(day_num(col(c::SIGNUP_DATE))).cast(DataType::Date).alias(ACTIVE_UNTIL))
        .with_columns([
            (col(ACTIVE_UNTIL) + lit(chrono::TimeDelta::days(wait))).clip_max(lit(t)).alias(c::CHURN_DATE),
            lit(INFERRED_REASON).cast(texts()).alias(c::CHURN_REASON),
            lit(true).alias(CHURN_INFERRED),
        ])
        .drop(cols([LAST_DAY]));
    let order = [
        c::CUSTOMER_ID,
        c::PLAN_TYPE,
        c::MARKET_ID,
        c::SIGNUP_DATE,
        c::CHURN_DATE,
        CHURN_INFERRED,
        c::CHURN_REASON,
        ACTIVE_UNTIL,
    ];
    concat([observed.select(order.map(col)), inferred.select(order.map(col))], UnionArgs::default())?
        .with_column(reasons.class_of(col(c::CHURN_REASON)).alias(REASON_CLASS))
        .sort([c::CUSTOMER_ID], SortMultipleOptions::default())
        .collect()
}

/// The last day of activity by T of each of `ids` (a top-up, or a bill with usage or a
/// charge: the end of its month), as `__last_day` in days since the epoch.
/// The bills are read only when `read_bills`, the top-ups only when `read_topups`.
fn last_activity(
    tables: &Tables,
    params: &FeatureParams,
    ids: &Column,
    read_bills: bool,
    read_topups: bool,
) -> PolarsResult<DataFrame> {
    let t_day = crate::epoch_days(params.as_of);
    let ids = DataFrame::new_infer_height(vec![ids.clone()])?.lazy();
    let semi = |lf: LazyFrame| {
        lf.join(ids.clone(), [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Semi))
    };
    let z = |name: &str| col(name).cast(DataType::Float64).fill_null(lit(0.0));
    let used = (z(c::VOICE_MINUTES) + z(c::DATA_MB) + z(c::SMS_COUNT) + col(c::TOTAL_CHARGE)).gt(lit(0.0));
    let mut parts = Vec::new();
    if read_bills {
        parts.push(
            semi(tables[&Table::Billing].clone())
                .filter(col(c::BILL_MONTH).lt_eq(lit(params.last_known_bill_month())).and(used))
                .group_by([col(c::CUSTOMER_ID)])
                .agg([day_num(col(c::BILL_MONTH).max().dt().month_end()).clip_max(lit(t_day)).alias(LAST_DAY)]),
        );
    }
    if let Some(topups) = tables.get(&Table::Topups).filter(|_| read_topups) {
        let day = day_num(col(c::TS));
        parts.push(
            semi(topups.clone())
                .filter(day.clone().lt_eq(lit(t_day)))
                .group_by([col(c::CUSTOMER_ID)])
                .agg([day.max().alias(LAST_DAY)]),
        );
    }
    if parts.is_empty() {
        return Ok(DataFrame::empty_with_schema(&Schema::from_iter([
            Field::new(c::CUSTOMER_ID.into(), DataType::Int64),
            Field::new(LAST_DAY.into(), DataType::Int32),
        ])));
    }
    let all = concat(parts, UnionArgs::default())?;
    collect_streaming(all.group_by([col(c::CUSTOMER_ID)]).agg([col(LAST_DAY).max().cast(DataType::Int32)]))
}

/// [`last_activity`] of `ids`: where `known` has it, from there; the event tables are
/// read only for the others (at 10M customers the read of every bill and top-up for
/// them took half of the retention stage).
fn last_activity_known(
    tables: &Tables,
    params: &FeatureParams,
    ids: &Column,
    known: &SilentPrepaid,
) -> PolarsResult<DataFrame> {
    let id = || col(c::CUSTOMER_ID);
    let found = known
        .last_seen
        .clone()
        .lazy()
        .filter(col(LAST_DAY).is_not_null())
        .select([id(), col(LAST_DAY).cast(DataType::Int32)]);
    let unknown = DataFrame::new_infer_height(vec![ids.clone()])?
        .lazy()
        .join(found.clone(), [id()], [id()], JoinArgs::new(JoinType::Anti))
        .collect()?;
    if unknown.height() == 0 {
        return found.collect();
    }
    // Their last days before the window that the features found, and what is read
    // of the tables they did not read.
    let has = |name: &str| known.last_seen.get_column_index(name).is_some();
    let (bills_found, topups_found) = (has(BILL_DAY_BEFORE_WINDOW), has(TOPUP_DAY_BEFORE_WINDOW));
    let mut days = Vec::new();
    let mut read = unknown.clone().lazy();
    for name in [BILL_DAY_BEFORE_WINDOW, TOPUP_DAY_BEFORE_WINDOW].into_iter().filter(|name| has(name)) {
        let before = known.last_seen.clone().lazy().select([id(), col(name)]);
        read = read.join(before, [id()], [id()], JoinArgs::new(JoinType::Left));
        days.push(col(name));
    }
    let (read_bills, read_topups) = (!bills_found, !topups_found);
    tracing::debug!(
        "last activity of {} silent customers: {} known, bills read: {read_bills}, top-ups read: {read_topups}",
        unknown.height(),
        ids.len() - unknown.height()
    );
    if read_bills || read_topups {
        let got = last_activity(tables, params, unknown.column(c::CUSTOMER_ID)?, read_bills, read_topups)?;
        read = read.join(
            got.lazy().select([id(), col(LAST_DAY).alias("__read_day")]),
            [id()],
            [id()],
            JoinArgs::new(JoinType::Left),
        );
        days.push(col("__read_day"));
    }
    let read = read
        .select([id(), polars::lazy::dsl::max_horizontal(days)?.cast(DataType::Int32).alias(LAST_DAY)])
        .filter(col(LAST_DAY).is_not_null());
    concat([found, read], UnionArgs::default())?.collect()
}

/// Each leaver's and joiner's monthly value, from one pass over the bills known at T:
/// `charge_before_leaving`, `margin_before_leaving` and
/// `collected_margin_before_leaving` (means over their bills in the 3 months up to the
/// month of `active_until`), `charge_after_joining`, `margin_after_joining` (means
/// over the bills of the signup month and the 2 after), and for the people marked
/// `whole_history` `lifetime_margin`, `lifetime_collected_margin` and `months_billed`
/// over every known bill (null for the others: only the windows' bills are read for
/// them, which keeps the group-by small). `people` has customer_id, signup_date,
/// active_until (null for joiners who stay) and whole_history. Collected margin counts
/// only what was paid (amount_paid - cost).
///
/// One customer partition at a time (each reading its bucket of the bills), rows
/// grouped by partition: the kernel holds a partition's people only (at 10M customers
/// the leavers and joiners of three years were 6M people, 0.7 GB of sums at once).
pub fn bill_values(tables: &Tables, params: &FeatureParams, people: &DataFrame) -> PolarsResult<DataFrame> {
    let mut values: Option<DataFrame> = None;
    values_by_partition(tables, params, people, |_, got| {
        match values.as_mut() {
            Some(all) => {
                all.vstack_mut(&got)?;
            }
            None => values = Some(got),
        }
        Ok(())
    })?;
    values.ok_or_else(|| polars_err!(ComputeError: "no customer partition"))
}

/// [`bill_values`] of each customer partition's people: `each(people, values)`.
fn values_by_partition(
    tables: &Tables,
    params: &FeatureParams,
    people: &DataFrame,
    mut each: impl FnMut(&DataFrame, DataFrame) -> PolarsResult<()>,
) -> PolarsResult<()> {
    for slice in crate::customer_slices(tables, params)? {
        loyalty_contract::cancel::check()?;
        let part = crate::restricted(tables, slice);
        let known = part[&Table::Billing].clone().filter(col(c::BILL_MONTH).lt_eq(lit(params.last_known_bill_month())));
        match slice {
            Some(s) => {
                let ids = people.column(c::CUSTOMER_ID)?.i64()?;
                let mine: BooleanChunked = ids.iter().map(|id| id.is_some_and(|id| s.contains(id))).collect();
                let mine = people.filter(&mine)?;
                let values = crate::leaver_kernel::bill_values(known, &mine, params.margin_rate)?;
                each(&mine, values)?;
            }
            None => each(people, crate::leaver_kernel::bill_values(known, people, params.margin_rate)?)?,
        }
    }
    Ok(())
}

/// The base movement's bill values, summed in fixed point one customer partition at a
/// time: by signup month what the joiners brought (`revenue_gained`, `margin_gained`:
/// their first bills), by churn month what the churners took (`revenue_lost`,
/// `margin_lost`: their bills before leaving).
#[derive(Default)]
pub(crate) struct MovementValues {
    gained: Vec<DataFrame>,
    lost: Vec<DataFrame>,
}

impl MovementValues {
    /// The sums of `values` ([`bill_values`] of `people`, who have their signup_date
    /// and churn_date) of the joiners from `first` to `t` and of the leavers from `first`.
    fn add(&mut self, people: &DataFrame, values: &DataFrame, first: NaiveDate, t: NaiveDate) -> PolarsResult<()> {
        let id = || [col(c::CUSTOMER_ID)];
        let joined = people.clone().lazy().select([col(c::CUSTOMER_ID), col(c::SIGNUP_DATE), col(c::CHURN_DATE)]).join(
            values.clone().lazy(),
            id(),
            id(),
            JoinArgs::new(JoinType::Left),
        );
        self.gained.push(
            joined
                .clone()
                .filter(col(c::SIGNUP_DATE).gt_eq(lit(first)).and(col(c::SIGNUP_DATE).lt_eq(lit(t))))
                .group_by([month_of(c::SIGNUP_DATE)])
                .agg([
                    fixed_sum(col("charge_after_joining")).alias("revenue_gained"),
                    fixed_sum(col("margin_after_joining")).alias("margin_gained"),
                ])
                .collect()?,
        );
        self.lost.push(
            joined
                .filter(col(c::CHURN_DATE).gt_eq(lit(first)))
                .group_by([month_of(c::CHURN_DATE)])
                .agg([
                    fixed_sum(col("charge_before_leaving")).alias("revenue_lost"),
                    fixed_sum(col("margin_before_leaving")).alias("margin_lost"),
                ])
                .collect()?,
        );
        Ok(())
    }

    /// Every partition's sums by month, as floats.
    fn totals(parts: &[DataFrame], names: [&str; 2]) -> PolarsResult<LazyFrame> {
        let parts: Vec<LazyFrame> = parts.iter().map(|df| df.clone().lazy()).collect();
        let all = concat(parts, UnionArgs::default())?;
        Ok(all.group_by([col("month")]).agg(names.map(|name| from_fixed_sum(col(name).sum()).alias(name))))
    }
}

/// The calendar month of the date column `name`, as `month`.
fn month_of(name: &str) -> Expr {
    col(name).dt().truncate(lit("1mo")).alias("month")
}

/// The win-back window's leavers' [`bill_values`] (the people marked `whole_history`),
/// and everyone's summed into the base movement's [`MovementValues`] as each customer
/// partition's come: at 10M customers the values of every joiner and leaver were
/// 0.45 GB at the retention stage's peak.
fn recent_values(
    tables: &Tables,
    params: &FeatureParams,
    people: &DataFrame,
    first: NaiveDate,
) -> PolarsResult<(DataFrame, MovementValues)> {
    let (mut recent, mut movement) = (Vec::new(), MovementValues::default());
    values_by_partition(tables, params, people, |mine, values| {
        movement.add(mine, &values, first, params.as_of)?;
        let whole = mine.clone().lazy().filter(col(WHOLE_HISTORY)).select([col(c::CUSTOMER_ID)]);
        let id = || [col(c::CUSTOMER_ID)];
        recent.push(values.lazy().join(whole, id(), id(), JoinArgs::new(JoinType::Semi)).collect()?);
        Ok(())
    })?;
    let recent =
        concat(recent.into_iter().map(DataFrame::lazy).collect::<Vec<_>>(), UnionArgs::default())?.collect()?;
    Ok((recent, movement))
}

/// The first day of the month of `d`.
pub(crate) fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("day 1 exists")
}

/// The leaky bucket, one row per calendar month from `first_month` to T's month:
/// `opening_base`, `gross_adds`, `churners` (by plan type and reason class),
/// `churn_rate` (churners / opening base), `net_adds`, `closing_base`, and the monthly
/// revenue and margin that left with the churners (their bills before leaving) and
/// came with the joiners (their first bills). `customers` holds every customer's
/// customer_id and signup_date; `leavers` is [`leavers`]; `values` are the sums of
/// [`bill_values`] of both. A churner counts in the month of their churn_date.
pub(crate) fn base_movement(
    customers: &DataFrame,
    leavers: &DataFrame,
    values: &MovementValues,
    first_month: NaiveDate,
    t: NaiveDate,
) -> PolarsResult<DataFrame> {
    let first = month_start(first_month);
    let mut months = vec![first];
    while let Some(next) = months.last().and_then(|m| m.checked_add_months(chrono::Months::new(1))) {
        if next > t {
            break;
        }
        months.push(next);
    }
    let calendar = DataFrame::new_infer_height(vec![Column::new("month".into(), months)])?.lazy();
    let signed_up = customers.clone().lazy().filter(col(c::SIGNUP_DATE).lt_eq(lit(t)));
    let churn_day = signed_up.clone().join(
        leavers.clone().lazy().select([col(c::CUSTOMER_ID), col(c::CHURN_DATE)]),
        [col(c::CUSTOMER_ID)],
        [col(c::CUSTOMER_ID)],
        JoinArgs::new(JoinType::Left),
    );
    let opening = churn_day
        .filter(
            col(c::SIGNUP_DATE)
                .lt(lit(first))
                .and(col(c::CHURN_DATE).is_null().or(col(c::CHURN_DATE).gt_eq(lit(first)))),
        )
        .select([len().cast(DataType::Int64).alias("__opening0")]);
    // Streaming, here and below: the joins of every customer with the leavers and of
    // the joiners and leavers with their values are counted and summed as they go, not
    // held (at 10M customers they were most of a gigabyte). The sums are in fixed
    // point, so the order the engine adds them in does not show.
    let opening = collect_streaming(opening)?.column("__opening0")?.i64()?.get(0).unwrap_or(0);
    let month = || [col("month")];
    let adds = signed_up
        .filter(col(c::SIGNUP_DATE).gt_eq(lit(first)))
        .group_by([month_of(c::SIGNUP_DATE)])
        .agg([len().cast(DataType::Int64).alias("gross_adds")])
        .join(
            MovementValues::totals(&values.gained, ["revenue_gained", "margin_gained"])?,
            month(),
            month(),
            JoinArgs::new(JoinType::Left),
        );
    let count_if = |cond: Expr, name: &str| cond.cast(DataType::Int64).sum().alias(name);
    let mut leave_aggs = vec![
        len().cast(DataType::Int64).alias("churners"),
        count_if(col(c::PLAN_TYPE).eq(lit("postpaid")), "churners_postpaid"),
        count_if(col(c::PLAN_TYPE).eq(lit("prepaid")), "churners_prepaid"),
    ];
    leave_aggs.extend(CLASSES.map(|k| count_if(col(REASON_CLASS).eq(lit(k)), &format!("churners_{k}"))));
    let leaves = leavers
        .clone()
        .lazy()
        .filter(col(c::CHURN_DATE).gt_eq(lit(first)))
        .group_by([month_of(c::CHURN_DATE)])
        .agg(leave_aggs)
        .join(
            MovementValues::totals(&values.lost, ["revenue_lost", "margin_lost"])?,
            month(),
            month(),
            JoinArgs::new(JoinType::Left),
        );
    let joined = calendar
        .join(adds, [col("month")], [col("month")], JoinArgs::new(JoinType::Left))
        .join(leaves, [col("month")], [col("month")], JoinArgs::new(JoinType::Left))
        .sort(["month"], SortMultipleOptions::default())
        .with_columns([all().exclude_cols(["month"]).as_expr().fill_null(lit(0))]);
    let net = col("gross_adds") - col("churners");
    let table = joined
        .with_column(net.clone().alias("net_adds"))
        .with_column((lit(opening) + col("net_adds").cum_sum(false) - col("net_adds")).alias("opening_base"))
        .with_columns([
            (col("opening_base") + col("net_adds")).alias("closing_base"),
            when(col("opening_base").gt(lit(0)))
                .then(col("churners").cast(DataType::Float64) / col("opening_base").cast(DataType::Float64))
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias("churn_rate"),
            (col("revenue_gained") - col("revenue_lost")).alias("net_revenue"),
            (col("margin_gained") - col("margin_lost")).alias("net_margin"),
        ])
        .select([
            col("month"),
            col("opening_base"),
            col("gross_adds"),
            col("churners"),
            col("churn_rate"),
            col("net_adds"),
            col("closing_base"),
            cols(["churners_postpaid", "churners_prepaid"]).as_expr(),
            cols(CLASSES.map(|k| format!("churners_{k}"))).as_expr(),
            col("revenue_lost"),
            col("margin_lost"),
            col("revenue_gained"),
            col("margin_gained"),
            col("net_revenue"),
            col("net_margin"),
        ]);
    collect_streaming(table)
}

/// The reason mix of `leavers` by `key` (a column of theirs): per group and reason
/// class, leavers and their share of the group.
pub fn reason_mix(leavers: &DataFrame, key: &str, grouping: &str) -> PolarsResult<DataFrame> {
    leavers
        .clone()
        .lazy()
        .group_by([col(key).cast(DataType::String).fill_null(lit("unknown")).alias("group"), col(REASON_CLASS)])
        .agg([len().cast(DataType::Int64).alias("leavers")])
        .with_column(
            (col("leavers").cast(DataType::Float64)
                / col("leavers").sum().over([col("group")])?.cast(DataType::Float64))
            .alias("share"),
        )
        .with_column(lit(grouping.to_string()).alias("grouping"))
        .select([col("grouping"), col("group"), col(REASON_CLASS), col("leavers"), col("share")])
        .sort(["group", REASON_CLASS], SortMultipleOptions::default())
        .collect()
}

/// What the run reports about the customers who left and joined.
pub struct LeaverTables {
    /// The win-back list ([`crate::retention::winback`]).
    pub winback: DataFrame,
    /// The leaky bucket ([`base_movement`]).
    pub movement: DataFrame,
    /// The reason mix of the leavers of the win-back window by plan type, competition
    /// level and the tier their margin before leaving reaches in today's pyramid.
    pub reason_mix: DataFrame,
    /// How many customers left in the win-back window, before any exclusion.
    pub leavers_in_window: usize,
    /// Every leaver by T: customer_id, churn_date, reason_class (to attribute the
    /// leavers of a previous run to the segment they had then).
    pub leavers: DataFrame,
}

/// The leavers, the win-back list, the leaky bucket from `first_month` and the reason
/// mix. `active` is the segmented table of customers active at T (customer_id, tier,
/// margin_monthly); `silent`, when given, what the features at T found of the prepaid
/// customers who fell silent (without it, their last activity is read from the
/// event tables).
pub fn analyse(
    tables: &Tables,
    params: &FeatureParams,
    active: &DataFrame,
    reasons: &ReasonMap,
    winback_months: u32,
    first_month: NaiveDate,
    silent: Option<&SilentPrepaid>,
) -> PolarsResult<LeaverTables> {
    let started = std::time::Instant::now();
    let customers = customer_columns(tables)?;
    let gone = leavers_among(&customers, tables, params, active.column(c::CUSTOMER_ID)?, reasons, silent)?;
    tracing::debug!("{} leavers in {:.2}s", gone.height(), started.elapsed().as_secs_f64());
    let everyone = customers.select([c::CUSTOMER_ID, c::SIGNUP_DATE])?;
    // Only ids and signup dates are read from here on: the text columns go now.
    drop(customers);
    let from = params.as_of.checked_sub_months(chrono::Months::new(winback_months)).unwrap_or(params.as_of);
    // The win-back list shows its leavers' lifetime margin: their every bill is read.
    let people = everyone
        .clone()
        .lazy()
        .join(
            gone.clone().lazy().select([
                col(c::CUSTOMER_ID),
                col(ACTIVE_UNTIL),
                col(c::CHURN_DATE),
                col(c::CHURN_DATE).gt(lit(from)).alias(WHOLE_HISTORY),
            ]),
            [col(c::CUSTOMER_ID)],
            [col(c::CUSTOMER_ID)],
            JoinArgs::new(JoinType::Left),
        )
        .filter(col(ACTIVE_UNTIL).is_not_null().or(col(c::SIGNUP_DATE).gt_eq(lit(month_start(first_month)))))
        .with_column(col(WHOLE_HISTORY).fill_null(lit(false)))
        .collect()?;
    let started = std::time::Instant::now();
    let (values, movement_values) = recent_values(tables, params, &people, month_start(first_month))?;
    tracing::debug!("bill values of {} customers in {:.2}s", people.height(), started.elapsed().as_secs_f64());
    drop(people);
    let started = std::time::Instant::now();
    let winback = crate::retention::winback(&gone, &values, params, winback_months, reasons)?;
    tracing::debug!("win-back list in {:.2}s", started.elapsed().as_secs_f64());
    let started = std::time::Instant::now();
    let movement = base_movement(&everyone, &gone, &movement_values, first_month, params.as_of)?;
    tracing::debug!("base movement in {:.2}s", started.elapsed().as_secs_f64());
    let recent = gone.clone().lazy().filter(col(c::CHURN_DATE).gt(lit(from)));
    let recent = crate::per_customer::with_competition(recent, tables, params)
        .join(values.lazy(), [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Left))
        .with_column(tier_by_margin(active)?.alias(crate::segments::TIER))
        .collect()?;
    let reason_mix = concat(
        [
            reason_mix(&recent, c::PLAN_TYPE, "plan_type")?.lazy(),
            reason_mix(&recent, n::COMPETITION_LEVEL, "competition_level")?.lazy(),
            reason_mix(&recent, crate::segments::TIER, "tier")?.lazy(),
            reason_mix(&recent.clone().lazy().with_column(lit("all").alias("__all")).collect()?, "__all", "all")?
                .lazy(),
        ],
        UnionArgs::default(),
    )?
    .collect()?;
    let leavers = gone.select([c::CUSTOMER_ID, c::CHURN_DATE, REASON_CLASS])?;
    Ok(LeaverTables { winback, movement, reason_mix, leavers_in_window: recent.height(), leavers })
}

/// A leaver's tier in today's pyramid from their monthly margin before leaving: at or
/// above the smallest margin in today's platinum (gold) tier, platinum (gold); lead at
/// or below zero, billed or collected; iron otherwise.
fn tier_by_margin(active: &DataFrame) -> PolarsResult<Expr> {
    let floor = |tier: &str| -> PolarsResult<f64> {
        let lf = active.clone().lazy().filter(col(crate::segments::TIER).eq(lit(tier)));
        let df = lf.select([col(n::MARGIN_MONTHLY).min()]).collect()?;
        Ok(df.column(n::MARGIN_MONTHLY)?.f64()?.get(0).unwrap_or(f64::INFINITY))
    };
    let (platinum, gold) = (floor("platinum")?, floor("gold")?);
    let billed = col("margin_before_leaving");
    let collected = col("collected_margin_before_leaving");
    Ok(when(billed.clone().is_null())
        .then(lit("unknown"))
        .when(crate::segments::unprofitable(billed.clone(), Some(collected)))
        .then(lit("lead"))
        .when(billed.clone().gt_eq(lit(platinum)))
        .then(lit("platinum"))
        .when(billed.gt_eq(lit(gold)))
        .then(lit("gold"))
        .otherwise(lit("iron")))
}
