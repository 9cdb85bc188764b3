#!/usr/bin/env python3
"""`make bench`: run the benchmarks and write BENCHMARKS.md.

Every figure comes from this one run on this machine: wall time from a monotonic
clock, peak RSS from the kernel's rusage of the child (ru_maxrss). No third-party
Python packages are needed for the figures below.
"""

import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = os.environ.get("BIN", str(ROOT / "target" / "release" / "loyalty"))
WORK = ROOT / "bench-data"
PEER_PY = os.environ.get("PEER_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
AS_OF = "2024-12-31"


def measure(cmd):
    """Run cmd; return (wall seconds, peak RSS in MiB)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"benchmark command failed: {' '.join(map(str, cmd))}")
    return wall, usage.ru_maxrss / 1024.0


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB RAM, {platform.system()} {platform.release()}; {rustc}; polars 0.55.2 (Rust)"


def rows_of(truth_path):
    truth = json.loads(pathlib.Path(truth_path).read_text())
    return dict(truth["rows"])


def main():
    WORK.mkdir(exist_ok=True)
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {datetime.date.today().isoformat()}. Machine: {machine()}.",
        "Wall time is end to end (process start to exit); peak memory is the peak resident set size of the process.",
        "",
        "## Data generator (`loyalty gen`)",
        "",
        "| customers x months | billing rows | all rows | layout | wall time | rows/s | peak RSS |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for customers, months, hive in [(1_000_000, 24, False), (1_000_000, 24, True)]:
        out = WORK / f"gen-{customers // 1000}k-{months}{'-hive' if hive else ''}"
        cmd = [BIN, "--quiet", "gen", "--out", str(out), "--customers", str(customers), "--months", str(months), "--seed", "7"]
        if hive:
            cmd.append("--hive")
        wall, rss = measure(cmd)
        rows = rows_of(out / "truth" / "ground_truth.json")
        data_rows = sum(n for t, n in rows.items() if not t.startswith("truth/"))
        lines.append(
            f"| {customers:,} x {months} | {rows['billing']:,} | {data_rows:,} | {'hive by month' if hive else 'one file per chunk'} "
            f"| {wall:.1f} s | {data_rows / wall:,.0f} | {rss:,.0f} MiB |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        "Command: `loyalty gen --out DIR --customers 1000000 --months 24 --seed 7 [--hive]`.",
        "",
        "## Validation (`loyalty validate`, every contract rule)",
        "",
        "| dataset | billing rows | wall time | billing rows/s | peak RSS |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ["gen-1000k-24", "gen-1000k-24-hive"]:
        out = WORK / name
        rows = rows_of(out / "truth" / "ground_truth.json")
        wall, rss = measure([BIN, "--quiet", "validate", "--data", str(out), "--format", "json"])
        lines.append(f"| {name} | {rows['billing']:,} | {wall:.1f} s | {rows['billing'] / wall:,.0f} | {rss:,.0f} MiB |")
        print(lines[-1], flush=True)
    lines += ["", "Command: `loyalty validate --data DIR --format json`.", ""]
    lines += features_section()
    lines += models_section()
    lines += churn_section()
    # Keep the sections other targets write (make bench-scale, make bench-engines).
    bench = ROOT / "BENCHMARKS.md"
    old = bench.read_text() if bench.exists() else ""
    kept = [f"<!-- begin:{k}" + old.split(f"<!-- begin:{k}", 1)[1].split(f"<!-- end:{k} -->", 1)[0] + f"<!-- end:{k} -->"
            for k in ("scale", "engines", "churn") if f"<!-- begin:{k}" in old and f"<!-- end:{k} -->" in old]
    bench.write_text("\n".join(lines + kept) + "\n")
    if os.environ.get("KEEP_BENCH_DATA") != "1":
        shutil.rmtree(WORK, ignore_errors=True)
    print("wrote BENCHMARKS.md")


def peer_versions():
    out = subprocess.run(
        [PEER_PY, "-c", "import duckdb, polars; print(duckdb.__version__, polars.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    return out[0], out[1]


def features_section():
    """`loyalty features` vs DuckDB and python-polars on the same files, one run."""
    duckdb_v, polars_v = peer_versions()
    lines = [
        "## Features (`loyalty features`) vs DuckDB and python-polars",
        "",
        f"Peers: DuckDB {duckdb_v} (SQL in `bench/features.sql`, 2 threads) and python-polars {polars_v} "
        "(lazy, streaming engine; `bench/peers.py`), on the same Parquet files, as of "
        f"T = {AS_OF}. The peers compute the per-customer aggregate stage (`--stage aggregates`: "
        "billing windows, top-ups, care contacts, surveys, referrals, services, active base); "
        "`bench/compare.py` checks that all three give the same numbers in every common column. "
        "The full `loyalty features` adds validation of every contract rule, scores, CPV and "
        "Kaplan-Meier CLV. The bare scan (`loyalty scan`) reads and sums every billing column: the floor "
        "the issue names; the aggregate stage also reads top-ups, interactions, surveys, referrals and "
        "services, so the scan of every table (`--all-tables`) is the floor of the same input. "
        "Billing is aggregated by a columnar kernel fed by the streaming engine (`--billing-engine kernel`, "
        "the default; see ARCHITECTURE.md); the reference Polars group-by plan gives the same numbers and "
        "is timed for comparison.",
        "",
        "| customers x months | billing rows | engine | what | wall time | billing rows/s | peak RSS | vs loyalty aggregates |",
        "|---|---:|---|---|---:|---:|---:|---:|",
    ]
    checks = []
    for customers in (1_000_000, 5_000_000):
        data = WORK / f"gen-{customers // 1000}k-24"
        if not (data / "customers.parquet").exists():
            measure([BIN, "--quiet", "gen", "--out", str(data), "--customers", str(customers), "--months", "24", "--seed", "7"])
        rows = rows_of(data / "truth" / "ground_truth.json")["billing"]
        out = WORK / "out"
        out.mkdir(exist_ok=True)
        runs = [
            ("loyalty", "aggregates (--skip-validation --stage aggregates)",
             [BIN, "--quiet", "features", "--data", str(data), "--as-of", AS_OF, "--skip-validation",
              "--stage", "aggregates", "--out", str(out / "loyalty-agg.parquet")]),
            ("DuckDB", "aggregates", [PEER_PY, str(ROOT / "bench" / "peers.py"), "duckdb", str(data), AS_OF, str(out / "duckdb.parquet")]),
            ("python-polars", "aggregates", [PEER_PY, str(ROOT / "bench" / "peers.py"), "polars", str(data), AS_OF, str(out / "polars.parquet")]),
            ("loyalty", "full: validate + features + scores + CPV + CLV",
             [BIN, "--quiet", "features", "--data", str(data), "--as-of", AS_OF, "--out", str(out / "loyalty-full.parquet")]),
            ("loyalty", "full without validation (--skip-validation)",
             [BIN, "--quiet", "features", "--data", str(data), "--as-of", AS_OF, "--skip-validation", "--out", str(out / "loyalty-full-skip.parquet")]),
            ("loyalty", "aggregates with the reference Polars group-by (--billing-engine polars)",
             [BIN, "--quiet", "features", "--data", str(data), "--as-of", AS_OF, "--skip-validation",
              "--stage", "aggregates", "--billing-engine", "polars", "--out", str(out / "loyalty-agg-polars.parquet")]),
            ("loyalty", "bare scan of billing (`loyalty scan`)", [BIN, "--quiet", "scan", "--data", str(data)]),
            ("loyalty", "bare scan of every table (`loyalty scan --all-tables`)",
             [BIN, "--quiet", "scan", "--data", str(data), "--all-tables"]),
        ]
        base = None
        for engine, what, cmd in runs:
            wall, rss = measure(cmd)
            base = base or wall
            lines.append(
                f"| {customers:,} x 24 | {rows:,} | {engine} | {what} | {wall:.1f} s | {rows / wall:,.0f} | {rss:,.0f} MiB | {wall / base:.2f}x |"
            )
            print(lines[-1], flush=True)
            if "bare scan of billing" in what:
                scan = wall
            if "bare scan of every table" in what:
                scan_all = wall
        agg = base
        full = [l for l in lines if "full: validate" in l and f"{customers:,} x" in l]
        lines.append(f"| {customers:,} x 24 | | loyalty | aggregates / bare scan of billing | | | | {agg / scan:.2f}x |")
        lines.append(f"| {customers:,} x 24 | | loyalty | aggregates / bare scan of every table | | | | {agg / scan_all:.2f}x |")
        result = subprocess.run(
            [PEER_PY, str(ROOT / "bench" / "compare.py"), str(out / "loyalty-agg.parquet"), str(out / "duckdb.parquet"), str(out / "polars.parquet"), str(out / "loyalty-agg-polars.parquet")],
            capture_output=True, text=True,
        )
        checks.append(f"- {customers:,} x 24: " + result.stdout.strip().replace("\n", "; ").replace(str(out) + "/", ""))
        if result.returncode != 0:
            sys.exit("the engines disagree: " + result.stdout)
    lines += ["", "Same numbers check (`bench/compare.py`, 1e-6 relative):", *checks, ""]
    return lines


def run_json(cmd):
    """Run cmd; return (wall seconds, peak RSS in MiB, its JSON stdout)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"benchmark command failed: {' '.join(map(str, cmd))}")
    return wall, usage.ru_maxrss / 1024.0, json.loads(out)


def models_section():
    """BG/NBD fit on simulated summaries: loyalty vs python lifetimes, same files."""

    version = subprocess.run([PEER_PY, "-c", "import lifetimes; print(lifetimes.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    lines = [
        "## BG/NBD fit (`loyalty fit bgnbd --summary`) vs python lifetimes",
        "",
        f"Summaries simulated from BG/NBD with r = 0.25, alpha = 4, a = 0.8, b = 2.5 (`bench/simulate_bgnbd.py`; "
        f"T of 1 to 104 weeks, t_x in whole days). Peer: lifetimes {version} `BetaGeoFitter` on the same file "
        "(`bench/lifetimes_fit.py`). loyalty merges identical (x, t_x, T) into weighted rows and adds standard "
        "errors; lifetimes fits every row. Wall time and peak RSS include reading the file.",
        "",
        "| customers | engine | wall time | peak RSS | r | alpha | a | b | vs loyalty |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in (1_000_000, 10_000_000):
        path = WORK / f"bgnbd-{n // 1_000_000}m.parquet"
        if not path.exists():
            subprocess.run([PEER_PY, str(ROOT / "bench" / "simulate_bgnbd.py"), str(n), str(path), "7"], check=True)
        wall, rss, ours = run_json([BIN, "--quiet", "fit", "bgnbd", "--summary", str(path), "--format", "json"])
        p = ours["params"]
        lines.append(f"| {n:,} | loyalty ({ours['rows']:,} likelihood rows) | {wall:.1f} s | {rss:,.0f} MiB | "
                     f"{p['r']:.4f} | {p['alpha']:.4f} | {p['a']:.4f} | {p['b']:.4f} | 1.00x |")
        print(lines[-1], flush=True)
        base = wall
        wall, rss, theirs = run_json([PEER_PY, str(ROOT / "bench" / "lifetimes_fit.py"), str(path)])
        p = theirs["params"]
        lines.append(f"| {n:,} | lifetimes | {wall:.1f} s | {rss:,.0f} MiB | "
                     f"{p['r']:.4f} | {p['alpha']:.4f} | {p['a']:.4f} | {p['b']:.4f} | {wall / base:.2f}x |")
        print(lines[-1], flush=True)
    lines += ["", "Command: `loyalty fit bgnbd --summary FILE --format json`.", ""]
    return lines


def churn_section():
    """Cross-validated churn model quality on the real IBM telco sample (wa-churn)."""
    data = WORK / "wa-churn"
    subprocess.run([BIN, "--quiet", "import", "wa-churn", "--input", str(ROOT / "data" / "external" / "wa_churn.csv"),
                    "--out", str(data)], check=True)
    lines = [
        "## Churn models on IBM's telco sample (`loyalty churn evaluate`)",
        "",
        "`loyalty import wa-churn` of `data/external/wa_churn.csv` (7,043 subscribers, one snapshot), then 5-fold "
        "stratified cross-validation of churn within 1 month of the snapshot. Published models on this sample reach "
        "ROC AUC 0.84-0.85 with every column; the contract has no columns for gender, senior citizen, partner, "
        "dependents, paperless billing or payment method (see README).",
        "",
        "| model | trees | ROC AUC | top-decile lift | Brier | wall time | peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for trees in ("300", "100"):
        wall, rss, j = run_json([BIN, "--quiet", "churn", "evaluate", "--data", str(data), "--horizon-months", "1",
                                 "--trees", trees, "--format", "json"])
        for m in j["cross_validated"]:
            if trees != "300" and m["model"].startswith("logistic"):
                continue
            lines.append(f"| {m['model']} | {trees if 'boosting' in m['model'] else ''} | {m['roc_auc']:.4f} | "
                         f"{m['top_decile_lift']:.2f} | {m['brier']:.4f} | {wall:.1f} s | {rss:,.0f} MiB |")
            print(lines[-1], flush=True)
    lines += ["", "Wall time and memory are of the whole `churn evaluate` run (features, 5 folds of every model).", ""]
    return lines


if __name__ == "__main__":
    main()
