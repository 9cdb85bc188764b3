#!/usr/bin/env python3
"""The hand-written churn job `make bench` sets beside `loyalty run`.

DuckDB SQL (bench/features.sql, the same per-customer definitions) computes the
features at every snapshot date and at T; LightGBM 4 (300 trees, 31 leaves, learning
rate 0.05, otherwise its defaults) is trained per plan type on the training snapshots,
tested out of time on the test snapshot, refitted on every snapshot and scores the
customers active at T. The snapshot dates, the horizon and the row cap are read from
the run's model_quality.json, so both jobs learn from the same dates and as many rows.

--designs DIR (from `loyalty churn train --designs-out DIR`): LightGBM also learns from
loyalty's own training rows and is tested on its test rows, the same features and the
same rows as loyalty's classifiers.

--ours CUSTOMERS.parquet (the run's customers table): where the data has the
generator's truth of the future after T (DATA/truth/customers.parquet), the AUC with
which loyalty's scores, the peer's scores and the true probabilities (the ceiling)
rank the churn of the h months after T, per plan type.

usage: churn_peer.py DATA MODEL_QUALITY_JSON OUT_JSON [--designs DIR] [--ours FILE] [--cap N]
"""

import argparse

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


def same_features(designs, plan):
    """LightGBM on loyalty's own out-of-time rows of `plan`: test AUC and fit time."""
    train = pl.read_parquet(designs / f"{plan}_train.parquet")
    test = pl.read_parquet(designs / f"{plan}_test.parquet")
    names = [c for c in train.columns if c != "churned"]
    started = time.monotonic()
    model = lgb.train(PARAMS, lgb.Dataset(train.select(names).to_numpy(), label=train["churned"].to_numpy()),
                      num_boost_round=TREES)
    seconds = time.monotonic() - started
    auc = roc_auc(model.predict(test.select(names).to_numpy()), test["churned"].to_numpy())
    return {"roc_auc": auc, "fit_seconds": seconds, "train_rows": train.height, "test_rows": test.height,
            "features": len(names)}


def future_aucs(data, h, t, scores):
    """Per plan type: the AUC with which each score column of `scores` (customer_id,
    plan_type, ...) ranks churn in the h months after T, and the true probability's."""
    truth_path = data / "truth" / "customers.parquet"
    if not truth_path.exists():
        return {}
    truth = pl.read_parquet(truth_path, columns=["customer_id", "future_churn_date", f"true_p_churn_{h}m"])
    end = month_end_after(t, h)
    df = scores.join(truth, on="customer_id", how="inner").filter(pl.col(f"true_p_churn_{h}m").is_not_null())
    df = df.with_columns(((pl.col("future_churn_date") <= end).fill_null(False)).cast(pl.Int8).alias("future"))
    out = {}
    for plan in ("postpaid", "prepaid"):
        part = df.filter(pl.col("plan_type") == plan)
        y = part["future"].to_numpy()
        if part.height == 0 or y.sum() == 0:
            continue
        cols = [c for c in part.columns if c.startswith("p_")] + [f"true_p_churn_{h}m"]
        out[plan] = {c: roc_auc(part[c].to_numpy(), y) for c in cols}
        out[plan]["customers"], out[plan]["churners"] = part.height, int(y.sum())
    return out


def main():
    args = argparse.ArgumentParser()
    args.add_argument("data", type=pathlib.Path)
    args.add_argument("quality")
    args.add_argument("out")
    args.add_argument("--designs", type=pathlib.Path)
    args.add_argument("--ours", type=pathlib.Path)
    args.add_argument("--cap", type=int, default=400_000)
    a = args.parse_args()
    data, quality_path, out_path, cap = a.data, a.quality, a.out, a.cap
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
    plans, fit_seconds, score_seconds, peer_scores = {}, 0.0, 0.0, []
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
        peer_scores.append(scored.select("customer_id", "plan_type").with_columns(pl.Series("p_peer", p)))
        plans[plan] = {"roc_auc": auc, "train_rows": train.height, "test_rows": test.height,
                       "scored": scored.height, "mean_p_churn": float(p.mean())}
        if a.designs:
            plans[plan]["same_features"] = same_features(a.designs, plan)
    seconds["fits"] = fit_seconds
    seconds["scoring"] = score_seconds
    seconds["total"] = sum(seconds.values())
    future = {}
    if a.ours:
        ours = pl.read_parquet(a.ours, columns=["customer_id", f"p_churn_{h}m"]).rename({f"p_churn_{h}m": "p_loyalty"})
        future = future_aucs(data, h, t, pl.concat(peer_scores).join(ours, on="customer_id", how="inner"))
    result = {"lightgbm": lgb.__version__, "trees": TREES, "params": PARAMS, "features": names,
              "plans": plans, "seconds": seconds, "future": future}
    pathlib.Path(out_path).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "features"}))


if __name__ == "__main__":
    main()
