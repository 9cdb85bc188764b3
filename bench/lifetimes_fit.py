#!/usr/bin/env python3
"""Fit BG/NBD with python `lifetimes` (the peer) on a summary file; print JSON.

usage: lifetimes_fit.py SUMMARY.parquet
"""

import json
import sys
import time

import polars as pl
from lifetimes import BetaGeoFitter


def main():
    df = pl.read_parquet(sys.argv[1])
    start = time.monotonic()
    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bgf.fit(df["x"].to_numpy(), df["t_x"].to_numpy(), df["T"].to_numpy())
    p = bgf.params_
    print(json.dumps({
        "params": {k: float(p[k]) for k in ["r", "alpha", "a", "b"]},
        "fit_seconds": time.monotonic() - start,
    }))


if __name__ == "__main__":
    main()
