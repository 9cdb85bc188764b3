#!/usr/bin/env python3
"""The hand-written churn job `make bench` sets beside `loyalty run`.

DuckDB SQL (bench/features.sql, the same per-customer definitions) computes the
features at every snapshot date and at T; LightGBM 4 (300 trees, 31 leaves, learning
rate 0.05, otherwise its defaults) is trained per plan type on the training snapshots,
tested out of time on the test snapshot, refitted on every snapshot and scores the
customers active at T. The snapshot dates, the horizon and the row cap are read from
the run's model_quality.json, so both jobs learn from the same dates and as many rows.

usage: churn_peer.py DATA MODEL_QUALITY_JSON OUT_JSON [MAX_TRAIN_ROWS]
"""

import calendar
import datetime as dt
import json
import pathlib
import sys
import tempfile
import time

import lightgbm as lgb
import numpy as np
import polars as pl

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from peers import run_duckdb  # noqa: E402

PARAMS = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.05, "verbose": -1,
          "num_threads": 2, "seed": 7, "deterministic": True}
TREES = 300


def month_end_after(d, months):
    y, m = divmod(d.year * 12 + d.month - 1 + months, 12)
    return dt.date(y, m + 1, calendar.monthrange(y, m + 1)[1])


def roc_auc(p, y):
    """Mann-Whitney: the share of (churner, stayer) pairs ranked right, ties half."""
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sorted_p = p[order]
    # average ranks of ties
    i = 0
    while i < len(p):
        j = i
        while j + 1 < len(p) and sorted_p[j + 1] == sorted_p[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def features_at(data, t, tmp):
    out = pathlib.Path(tmp) / f"features-{t}.parquet"
    run_duckdb(str(data), t.isoformat(), str(out))
    return pl.read_parquet(out)


def labelled(feats, customers, t0, h):
    end = month_end_after(t0, h)
    df = feats.join(customers, on="customer_id", how="left")
    churned = (pl.col("churn_date") > t0) & (pl.col("churn_date") <= end)
    return df.with_columns(churned.fill_null(False).cast(pl.Int8).alias("label"))


def sample(df, cap, seed):
    if cap == 0 or df.height <= cap:
        return df
    return df.sample(n=cap, seed=seed)


def main():
    data, quality_path, out_path = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    cap = int(sys.argv[4]) if len(sys.argv) > 4 else 400_000
    q = json.loads(pathlib.Path(quality_path).read_text())
    h = q["horizon_months"]
    t = dt.date.fromisoformat(q["as_of"])
    test_t0 = dt.date.fromisoformat(q["test_snapshot"])
    train_t0 = [dt.date.fromisoformat(d) for d in q["train_snapshots"]]
    customers = pl.read_parquet(data / "customers.parquet", columns=["customer_id", "plan_type", "churn_date"])
    seconds = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        snaps = {d: labelled(features_at(data, d, tmp), customers, d, h) for d in [test_t0, *train_t0]}
        at_t = features_at(data, t, tmp).join(customers, on="customer_id", how="left")
    seconds["features"] = time.monotonic() - started
    names = [c for c, dtype in snaps[test_t0].schema.items()
             if dtype.is_numeric() and c not in ("customer_id", "label")]
    per_snapshot = -(-cap // (len(train_t0) + 1)) if cap else 0
    plans, fit_seconds, score_seconds = {}, 0.0, 0.0
    for plan in ("postpaid", "prepaid"):
        of = lambda df: df.filter(pl.col("plan_type") == plan)
        test = sample(of(snaps[test_t0]), cap, 29)
        train = pl.concat([sample(of(snaps[d]), per_snapshot, 31 + k) for k, d in enumerate(train_t0)])
        if train["label"].sum() == 0 or test["label"].sum() == 0:
            continue
        x = lambda df: df.select(names).cast(pl.Float64).to_numpy()
        started = time.monotonic()
        model = lgb.train(PARAMS, lgb.Dataset(x(train), label=train["label"].to_numpy()), num_boost_round=TREES)
        auc = roc_auc(model.predict(x(test)), test["label"].to_numpy())
        everything = pl.concat([train, sample(test, per_snapshot, 37)])
        final = lgb.train(PARAMS, lgb.Dataset(x(everything), label=everything["label"].to_numpy()),
                          num_boost_round=TREES)
        fit_seconds += time.monotonic() - started
        started = time.monotonic()
        scored = of(at_t)
        p = final.predict(x(scored))
        score_seconds += time.monotonic() - started
        plans[plan] = {"roc_auc": auc, "train_rows": train.height, "test_rows": test.height,
                       "scored": scored.height, "mean_p_churn": float(p.mean())}
    seconds["fits"] = fit_seconds
    seconds["scoring"] = score_seconds
    seconds["total"] = sum(seconds.values())
    result = {"lightgbm": lgb.__version__, "trees": TREES, "params": PARAMS, "features": names,
              "plans": plans, "seconds": seconds}
    pathlib.Path(out_path).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "features"}))


if __name__ == "__main__":
    main()
