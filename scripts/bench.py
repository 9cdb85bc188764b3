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
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines))
    if os.environ.get("KEEP_BENCH_DATA") != "1":
        shutil.rmtree(WORK, ignore_errors=True)
    print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
