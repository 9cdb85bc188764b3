#!/usr/bin/env python3
"""Peers for the feature benchmark: the aggregate stage of `loyalty features
--stage aggregates` in DuckDB (bench/features.sql) and in python-polars (lazy,
streaming engine), on the same files; and a bare scan of the billing files.

usage: peers.py duckdb|polars|scan DATA AS_OF OUT
"""

import datetime as dt
import pathlib
import sys

MARGIN_RATE = 0.35
INACTIVITY_DAYS = 90


def dates(as_of):
    t = dt.date.fromisoformat(as_of)
    nxt = t + dt.timedelta(days=1)
    first = nxt.replace(day=1)
    lkbm = (first - dt.timedelta(days=1)).replace(day=1)
    y, m = t.year, t.month - 12
    while m <= 0:
        y, m = y - 1, m + 12
    import calendar

    t12 = dt.date(y, m, min(t.day, calendar.monthrange(y, m)[1]))
    return t, lkbm, t12


def billing_source(data):
    billing = pathlib.Path(data) / "billing"
    if (pathlib.Path(data) / "billing.parquet").exists():
        return str(pathlib.Path(data) / "billing.parquet"), False
    hive = any(p.is_dir() and "=" in p.name for p in billing.iterdir())
    return str(billing / ("**/*.parquet" if hive else "*.parquet")), hive


def run_duckdb(data, as_of, out):
    import duckdb

    t, lkbm, t12 = dates(as_of)
    glob, hive = billing_source(data)
    sql = (pathlib.Path(__file__).parent / "features.sql").read_text()
    sql = sql.format(
        data=data, as_of=t, lkbm=lkbm, t12=t12, margin_rate=MARGIN_RATE, billing=glob,
        hive=str(hive).lower(), out=out, inactivity_days=INACTIVITY_DAYS,
    )
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(sql)


def run_polars(data, as_of, out):
    import polars as pl

    t, lkbm, t12 = dates(as_of)
    glob, hive = billing_source(data)
    d = pathlib.Path(data)
    known = pl.scan_parquet(glob, hive_partitioning=hive).filter(pl.col("bill_month") <= lkbm)
    usage = (
        pl.col("voice_minutes").fill_null(0) + pl.col("data_mb").fill_null(0)
        + pl.col("sms_count").cast(pl.Float64).fill_null(0) + pl.col("total_charge")
    )
    mn = lambda c: pl.col(c).dt.year().cast(pl.Int32) * 12 + pl.col(c).dt.month().cast(pl.Int32)
    p1 = known.group_by("customer_id").agg(
        pl.col("bill_month").max().alias("last_bill_month"),
        pl.len().alias("months_billed"),
        pl.col("bill_month").filter((usage > 0) & (mn("bill_month") > lkbm.year * 12 + lkbm.month - 12)).max().alias("last_active_bill"),
    )
    mn = lambda c: pl.col(c).dt.year().cast(pl.Int32) * 12 + pl.col(c).dt.month().cast(pl.Int32)
    lk = lkbm.year * 12 + lkbm.month
    j = known.with_columns((pl.lit(lk) - mn("bill_month")).alias("k")).filter(pl.col("k") < 12)
    x = -pl.col("k").cast(pl.Float64)

    def slope(y, w):
        ok = w & pl.col(y).is_not_null()
        yy = pl.col(y).cast(pl.Float64)
        n = ok.sum()
        sx, sy = x.filter(ok).sum(), yy.filter(ok).sum()
        sxy, sxx = (x * yy).filter(ok).sum(), (x * x).filter(ok).sum()
        den = n * sxx - sx * sx
        return pl.when((n >= 2) & (den > 1e-12)).then((n * sxy - sx * sy) / den)

    w3, w6, w12 = pl.col("k") < 3, pl.col("k") < 6, pl.col("k") < 12
    ch = pl.col("total_charge")
    margin = (ch - pl.col("cost")).fill_null(ch * MARGIN_RATE)
    late = (pl.col("days_late") > 0).fill_null(False) | (
        pl.col("days_late").is_null() & pl.col("amount_paid").is_not_null() & (pl.col("amount_paid") < ch)
    )
    p2 = j.group_by("customer_id").agg(
        ch.filter(w3).mean().alias("arpu_3m"),
        ch.filter(w12).mean().alias("arpu_12m"),
        margin.filter(w3).mean().alias("margin_monthly"),
        pl.col("data_mb").filter(w3).mean().alias("data_mb_3m"),
        slope("total_charge", w6).alias("charge_trend_per_month"),
        pl.when(ch.filter(w12).mean() > 0).then(ch.filter(w12).std(ddof=0) / ch.filter(w12).mean()).alias("charge_volatility_cv"),
        pl.when((ch + pl.col("discount").fill_null(0)).filter(w12).sum() > 0)
        .then(pl.col("discount").fill_null(0).filter(w12).sum() / (ch + pl.col("discount").fill_null(0)).filter(w12).sum())
        .alias("discount_share_12m"),
        slope("voice_minutes", w6).alias("voice_trend_min_per_month"),
        slope("data_mb", w6).alias("data_trend_mb_per_month"),
        late.filter(w12).cast(pl.Float64).mean().alias("late_payment_rate_12m"),
        pl.col("days_late").filter(w12).max().cast(pl.Float64).alias("max_days_late_12m"),
        (ch - pl.col("amount_paid")).clip(lower_bound=0).filter(w12 & pl.col("amount_paid").is_not_null()).sum().alias("unpaid_amount_12m"),
        slope("days_late", w6).alias("days_late_trend_per_month"),
    )
    day = pl.col("ts").cast(pl.Date)
    tp = (
        pl.scan_parquet(d / "topups.parquet").filter((day <= t) & (day > t12)).group_by("customer_id")
        .agg((day > t12).sum().cast(pl.Float64).alias("topups_12m"),
             pl.col("amount").filter(day > t12).sum().alias("topup_amount_12m"),
             day.max().alias("last_topup"))
    )
    ia = (
        pl.scan_parquet(d / "interactions.parquet").filter((day <= t) & (day > t12)).group_by("customer_id")
        .agg((pl.col("kind") == "complaint").sum().cast(pl.Float64).alias("complaints_12m"),
             pl.len().cast(pl.Float64).alias("contacts_12m"),
             (pl.col("resolved") == False).sum().cast(pl.Float64).alias("unresolved_12m"),  # noqa: E712
             pl.col("channel").n_unique().cast(pl.Float64).alias("channels_used_12m"))
    )
    sv = (
        pl.scan_parquet(d / "surveys.parquet").filter(pl.col("survey_date") <= t).group_by("customer_id")
        .agg(pl.len().cast(pl.Float64).alias("surveys_answered"),
             (pl.lit(t) - pl.col("survey_date").max()).dt.total_days().cast(pl.Float64).alias("survey_age_days"),
             pl.col("overall").sort_by("survey_date").last().cast(pl.Float64).alias("survey_overall"),
             pl.col("recommend").sort_by("survey_date").last().cast(pl.Float64).alias("survey_recommend"))
    )
    rf = (
        pl.scan_parquet(d / "referrals.parquet").filter(pl.col("referral_date") <= t).group_by("customer_id")
        .agg(pl.len().cast(pl.Float64).alias("referrals_made"),
             (pl.col("referral_date") > t12).sum().cast(pl.Float64).alias("referrals_12m"))
    )
    sh = (
        pl.scan_parquet(d / "services.parquet")
        .filter((pl.col("start_date") <= t) & (pl.col("end_date").is_null() | (pl.col("end_date") > t)))
        .join(pl.scan_parquet(d / "service_catalog.parquet").select("service", "monthly_margin"), on="service", how="left")
        .group_by("customer_id")
        .agg(pl.col("service").n_unique().cast(pl.Float64).alias("services_held"),
             pl.col("monthly_margin").sum().alias("services_margin_monthly"))
    )
    c = pl.scan_parquet(d / "customers.parquet").filter(pl.col("signup_date") <= t)
    tenure = (t.year * 12 + t.month) - mn("signup_date") - (pl.col("signup_date").dt.day() > t.day).cast(pl.Int32)
    base = c.with_columns(tenure.alias("tenure_months"))
    for other in (p1, p2, tp, ia, sv, rf, sh):
        base = base.join(other, on="customer_id", how="left")
    bill_act = pl.when(pl.col("last_active_bill").is_not_null()).then(
        pl.min_horizontal(pl.col("last_active_bill").dt.month_end(), pl.lit(t))
    )
    last = pl.max_horizontal(bill_act, pl.col("last_topup")).fill_null(pl.max_horizontal(pl.col("signup_date"), pl.lit(t12)))
    recency = (pl.lit(t) - last).dt.total_days().cast(pl.Float64)
    zero = ["months_billed", "unpaid_amount_12m", "topups_12m", "topup_amount_12m", "complaints_12m", "contacts_12m",
            "unresolved_12m", "channels_used_12m", "surveys_answered", "referrals_made", "referrals_12m",
            "services_held", "services_margin_monthly"]
    out_lf = (
        base.with_columns([pl.col(z).fill_null(0) for z in zero] + [recency.alias("recency_days")])
        .filter(pl.col("churn_date").is_null() | (pl.col("churn_date") > t))
        .filter((pl.col("plan_type") != "prepaid") | (pl.col("recency_days") <= INACTIVITY_DAYS))
        .drop("last_bill_month", "last_active_bill", "last_topup", "churn_date", "churn_reason",
              "signup_date", "market_id", "plan_type", "contract_months")
        .sort("customer_id")
    )
    out_lf.sink_parquet(out, engine="streaming")


def run_scan(data, as_of, out):
    """The physical floor: read every billing column once and sum it."""
    import polars as pl

    glob, hive = billing_source(data)
    lf = pl.scan_parquet(glob, hive_partitioning=hive)
    df = lf.select(pl.all().to_physical().cast(pl.Float64).sum()).collect(engine="streaming")
    df.write_parquet(out)


if __name__ == "__main__":
    kind, data, as_of, out = sys.argv[1:5]
    {"duckdb": run_duckdb, "polars": run_polars, "scan": run_scan}[kind](data, as_of, out)
