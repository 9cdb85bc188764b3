//! Movement between two runs: how customers moved between value segments and tiers
//! since the previous run, who is new and who has gone.

use loyalty_contract::col as c;
use polars::prelude::*;

use crate::names as n;
use crate::segments::{SEGMENTS, TIER, VALUE_SEGMENT};

/// The state of a customer of this run who was not in the previous one.
pub const NEW: &str = "new";
/// The state of a customer of the previous run who is not in this one.
pub const GONE: &str = "gone";
/// The columns a previous run's customers table must have.
pub const PREVIOUS_COLUMNS: [&str; 4] = [c::CUSTOMER_ID, VALUE_SEGMENT, TIER, n::MARGIN_MONTHLY];

/// The kinds of movement, and the states of each in their order.
pub fn states(kind: &str) -> Vec<String> {
    let mut v: Vec<String> = match kind {
        VALUE_SEGMENT => SEGMENTS.iter().map(|s| s.3.to_string()).collect(),
        _ => ["platinum", "gold", "iron", "lead"].map(String::from).to_vec(),
    };
    v.insert(0, NEW.to_string());
    v.push(GONE.to_string());
    v
}

/// Per kind (`value_segment`, `tier`), previous state and current state (`new` and
/// `gone` for customers in one run only): customers, and the monthly margin they bring
/// now (`margin_monthly_now`; for the gone, the margin they brought in the previous
/// run) and brought then (`margin_monthly_before`). `previous` and `current` are the
/// customers tables of the two runs; ids are compared as text, so both must be plain or
/// both pseudonymised with the same key. Returns the table and how many customers
/// were in both runs.
pub fn migration(previous: &DataFrame, current: &DataFrame) -> PolarsResult<(DataFrame, usize)> {
    let side = |df: &DataFrame, tag: &str| {
        df.clone().lazy().select([
            col(c::CUSTOMER_ID).cast(DataType::String).alias("__id"),
            col(VALUE_SEGMENT).cast(DataType::String).alias(format!("{VALUE_SEGMENT}_{tag}")),
            col(TIER).cast(DataType::String).alias(format!("{TIER}_{tag}")),
            col(n::MARGIN_MONTHLY).cast(DataType::Float64).alias(format!("margin_{tag}")),
            lit(true).alias(format!("__in_{tag}")),
        ])
    };
    let both = side(previous, "before")
        .join(
            side(current, "now"),
            [col("__id")],
            [col("__id")],
            JoinArgs::new(JoinType::Full).with_coalesce(JoinCoalesce::CoalesceColumns),
        )
        .with_columns([col("__in_before").fill_null(lit(false)), col("__in_now").fill_null(lit(false))])
        .collect()?;
    let matched = both.clone().lazy().filter(col("__in_before").and(col("__in_now")));
    let matched = matched.select([len()]).collect()?.column("len")?.cast(&DataType::Int64)?.i64()?.get(0).unwrap_or(0);
    let by = |kind: &str| {
        let (from, to) = (format!("{kind}_before"), format!("{kind}_now"));
        let (in_before, in_now) = (col("__in_before"), col("__in_now"));
        both.clone()
            .lazy()
            .select([
                lit(kind.to_string()).alias("kind"),
                when(in_before.clone()).then(col(from.as_str())).otherwise(lit(NEW)).alias("from"),
                when(in_now.clone()).then(col(to.as_str())).otherwise(lit(GONE)).alias("to"),
                when(in_now).then(col("margin_now")).otherwise(col("margin_before")).alias("margin_monthly_now"),
                col("margin_before").alias("margin_monthly_before"),
            ])
            .group_by([col("kind"), col("from"), col("to")])
            .agg([
                len().cast(DataType::Int64).alias("customers"),
                col("margin_monthly_now").sum(),
                col("margin_monthly_before").sum(),
            ])
    };
    let order = |kind: &str| {
        let s = states(kind);
        let rank = |name: &str| {
            s.iter().enumerate().fold(lit(s.len() as i64), |acc, (i, state)| {
                when(col(name).eq(lit(state.clone()))).then(lit(i as i64)).otherwise(acc)
            })
        };
        by(kind).with_columns([rank("from").alias("__from"), rank("to").alias("__to")])
    };
    let out = concat([order(VALUE_SEGMENT), order(TIER)], UnionArgs::default())?
        .sort(
            ["kind", "__from", "__to"],
            SortMultipleOptions::default().with_order_descending_multi([true, false, false]),
        )
        .drop(cols(["__from", "__to"]))
        .collect()?;
    Ok((out, matched as usize))
}

/// The reason mix of the customers of the previous run who have left since, by the
/// value segment and tier they had then (`grouping` `value_segment (previous run)` and
/// `tier (previous run)`), in the layout of [`crate::leavers::reason_mix`]. `leavers`
/// has customer_id and reason_class; ids are compared as text, as in [`migration`].
pub fn reasons_by_previous_segment(previous: &DataFrame, leavers: &DataFrame) -> PolarsResult<DataFrame> {
    let id = || col(c::CUSTOMER_ID).cast(DataType::String);
    let gone = previous
        .clone()
        .lazy()
        .with_column(id())
        .join(
            leavers.clone().lazy().select([id(), col(crate::leavers::REASON_CLASS)]),
            [col(c::CUSTOMER_ID)],
            [col(c::CUSTOMER_ID)],
            JoinArgs::new(JoinType::Inner),
        )
        .collect()?;
    let parts = [(VALUE_SEGMENT, "value_segment (previous run)"), (TIER, "tier (previous run)")]
        .into_iter()
        .map(|(key, grouping)| crate::leavers::reason_mix(&gone, key, grouping).map(DataFrame::lazy))
        .collect::<PolarsResult<Vec<_>>>()?;
    concat(parts, UnionArgs::default())?.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn movement_between_two_runs_by_hand() {
        // 1 stays platinum; 2 falls from gold to least_valuable (tier gold -> iron); 3 (no
        // bill in the previous run's window: no margin) is gone; 4 is new.
        let previous = df!(
            c::CUSTOMER_ID => [1i64, 2, 3],
            VALUE_SEGMENT => ["platinum", "gold", "loyal"],
            TIER => ["platinum", "gold", "iron"],
            n::MARGIN_MONTHLY => [Some(50.0), Some(20.0), None],
        )
        .unwrap();
        let current = df!(
            c::CUSTOMER_ID => [1i64, 2, 4],
            VALUE_SEGMENT => ["platinum", "least_valuable", "potential"],
            TIER => ["platinum", "iron", "iron"],
            n::MARGIN_MONTHLY => [55.0, 8.0, 3.0],
        )
        .unwrap();
        let (m, matched) = migration(&previous, &current).unwrap();
        assert_eq!(matched, 2);
        let rows: Vec<String> = (0..m.height())
            .map(|i| {
                let get = |c: &str| m.column(c).unwrap().get(i).unwrap().to_string().trim_matches('"').to_string();
                format!(
                    "{} {}>{} {} {} {}",
                    get("kind"),
                    get("from"),
                    get("to"),
                    get("customers"),
                    get("margin_monthly_now"),
                    get("margin_monthly_before")
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                "value_segment new>potential 1 3.0 0.0",
                "value_segment platinum>platinum 1 55.0 50.0",
                "value_segment gold>least_valuable 1 8.0 20.0",
                "value_segment loyal>gone 1 0.0 0.0",
                "tier new>iron 1 3.0 0.0",
                "tier platinum>platinum 1 55.0 50.0",
                "tier gold>iron 1 8.0 20.0",
                "tier iron>gone 1 0.0 0.0",
            ]
        );
        // 3 left (moved) since the previous run, where it was loyal and iron.
        let leavers =
            df!(c::CUSTOMER_ID => [3i64, 9], crate::leavers::REASON_CLASS => ["uncontrollable", "controllable"])
                .unwrap();
        let mix = reasons_by_previous_segment(&previous, &leavers).unwrap();
        let rows: Vec<String> = (0..mix.height())
            .map(|i| {
                let get = |c: &str| mix.column(c).unwrap().get(i).unwrap().to_string().trim_matches('"').to_string();
                format!("{} {} {} {}", get("grouping"), get("group"), get("reason_class"), get("leavers"))
            })
            .collect();
        assert_eq!(
            rows,
            ["value_segment (previous run) loyal uncontrollable 1", "tier (previous run) iron uncontrollable 1"]
        );
        // Pseudonymised ids (text) against plain ones: nobody matches.
        let hashed = current.clone().lazy().with_column(lit("c0123").alias(c::CUSTOMER_ID)).collect().unwrap();
        assert_eq!(migration(&previous, &hashed).unwrap().1, 0);
    }
}
