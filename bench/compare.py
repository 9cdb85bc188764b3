#!/usr/bin/env python3
"""Check that feature tables from different engines hold the same numbers.

usage: compare.py REFERENCE OTHER [OTHER...]; exits 1 on any difference.
Columns present in all files are compared per customer_id: same customers, same
nulls, values within 1e-6 relative (1e-6 absolute below 1); text columns equal.
"""

import sys

import polars as pl


def compare(ref_path, other_path):
    a, b = pl.read_parquet(ref_path), pl.read_parquet(other_path)
    common = [c for c in b.columns if c in a.columns and c != "customer_id"]
    problems = []
    if a.height != b.height:
        problems.append(f"{a.height} rows vs {b.height}")
    j = a.select(["customer_id"] + common).join(
        b.select(["customer_id"] + common), on="customer_id", how="full", suffix="__o", coalesce=True
    )
    for c in common:
        if not (a.schema[c].is_numeric() or a.schema[c].is_temporal()):
            diff = j.select(pl.col(c).ne_missing(pl.col(c + "__o")).sum()).item()
            if diff:
                problems.append(f"{c}: {diff} values differ")
            continue
        # NaN (DuckDB's regr_slope of a single point) counts as null.
        x, y = pl.col(c).cast(pl.Float64).fill_nan(None), pl.col(c + "__o").cast(pl.Float64).fill_nan(None)
        diff, nulls = j.select(
            ((x - y).abs() > 1e-6 * y.abs().clip(lower_bound=1)).sum().alias("diff"),
            (x.is_null() != y.is_null()).sum().alias("nulls"),
        ).row(0)
        if diff or nulls:
            problems.append(f"{c}: {diff} values differ, {nulls} nulls differ")
    return len(common), problems


if __name__ == "__main__":
    ok = True
    for other in sys.argv[2:]:
        n, problems = compare(sys.argv[1], other)
        print(f"{other}: {n} columns compared, {'same numbers' if not problems else '; '.join(problems)}")
        ok &= not problems
    sys.exit(0 if ok else 1)
