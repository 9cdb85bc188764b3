#!/usr/bin/env python3
"""Simulate BG/NBD customer summaries with known parameters (for `make bench`).

usage: simulate_bgnbd.py CUSTOMERS OUT.parquet [SEED]
Each customer: lambda ~ Gamma(r, alpha), p ~ Beta(a, b), observed T weeks (whole
weeks, 1..104); purchases as a Poisson process with rate lambda, dropping out after
each purchase with probability p. Writes x, t_x, T (weeks, t_x rounded to days/7).
"""

import sys

import numpy as np
import polars as pl

R, ALPHA, A, B = 0.25, 4.0, 0.8, 2.5


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    rng = np.random.default_rng(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    lam = rng.gamma(R, 1.0 / ALPHA, n)
    p = rng.beta(A, B, n)
    T = rng.integers(1, 105, n).astype(float)
    x = np.zeros(n)
    t_x = np.zeros(n)
    now = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        now[idx] += rng.exponential(1.0, idx.size) / lam[idx]
        inside = now[idx] <= T[idx]
        bought = idx[inside]
        x[bought] += 1
        t_x[bought] = now[bought]
        alive[idx[~inside]] = False
        drop = bought[rng.random(bought.size) < p[bought]]
        alive[drop] = False
    t_x = np.round(t_x * 7) / 7  # whole days, as a daily log would give
    pl.DataFrame({"x": x, "t_x": t_x, "T": T}).write_parquet(out)


if __name__ == "__main__":
    main()
