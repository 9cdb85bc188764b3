#!/usr/bin/env python3
"""`make bench-scale` and `make bench-engines`: their sections of BENCHMARKS.md.

scale:   `loyalty gen --hive` at 1M, 3M and 10M customers x 36 months, a bare scan of
         every table, and the whole `loyalty run` on each: wall time and peak RSS per
         stage (from run.json, which resets the kernel's peak counter per stage),
         billing rows per second, and the feature stage over the bare scan.
churn:   the whole `loyalty run` (twice: same time? same bytes?) against a hand-written
         DuckDB + LightGBM churn job on the same snapshots (bench/churn_peer.py), on
         the demo and at 1M x 36: out-of-time AUC per plan type and times.
reads:   the whole `loyalty run` at SCALE_CUSTOMERS (default 1M) x 36, with polars'
         default reads of local files (memory-mapped) and with POLARS_FORCE_ASYNC=1
         (bounded reads), back to back: time and peak RSS per stage.
build:   a cold build of what `make test` builds (a fresh target folder, every
         dependency compiled) with `cargo --timings`: the wall time, and where it
         goes (compile time per crate family, the slowest crates).
engines: the per-customer aggregation at 1M x 24 on the local engine (Polars),
         on Ballista (one scheduler and two executors on this machine, started with
         `loyalty cluster`) and on DuckDB, in one run; bench/compare.py checks that
         the three agree.

Each section sits between markers in BENCHMARKS.md, so `make bench`, which rewrites
the rest of the file, keeps it. Figures come from this run on this machine: wall
time from a monotonic clock, peak RSS from the kernel's rusage of the child.
"""

import datetime
import html
import json
import re
import os
import pathlib
import shutil
import statistics
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = os.environ.get("BIN", str(ROOT / "target" / "release" / "loyalty"))
WORK = ROOT / "bench-data"
PEER_PY = os.environ.get("PEER_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
BENCH = ROOT / "BENCHMARKS.md"
MIB = 1024.0


def measure(cmd, allow_failure=False, env=None):
    """Run cmd; return (wall seconds, peak RSS in MiB), and the exit code if allowed to fail."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if allow_failure:
        return wall, usage.ru_maxrss / MIB, code
    if code != 0:
        sys.exit(f"benchmark command failed: {' '.join(map(str, cmd))}")
    return wall, usage.ru_maxrss / MIB


def measure_median(cmd, times=3):
    """cmd run `times` times: (median wall seconds, largest peak RSS in MiB, every wall time). A
    scan of files in the page cache varies by up to 70% from run to run on this machine; the
    median of three is the denominator of the ratios."""
    walls, peaks = zip(*(measure(cmd) for _ in range(times)))
    return statistics.median(walls), max(peaks), sorted(walls)


def rows_of(data):
    return dict(json.loads((data / "truth" / "ground_truth.json").read_text())["rows"])


def head():
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def stage_cell(s):
    """`wall / peak / held at start` of one stage record of run.json (older runs lack the last)."""
    cell = f"{s['wall_seconds']:.1f} s / {s['peak_rss_mib'] / MIB:.2f} GiB"
    return cell + (f" / {s['start_rss_mib'] / MIB:.2f} GiB" if s.get("start_rss_mib") else "")


def run_peak(rss, stages):
    """A run's peak RSS: it resets the kernel's high-water mark at every stage (for its
    per-stage peaks), which resets the rusage figure too, so its peak is the largest stage's."""
    return max([rss] + [s["peak_rss_mib"] for s in stages if s.get("peak_rss_mib")])


def commit():
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return f"`{head()}`" + (" (with uncommitted changes)" if dirty else "")


def write_section(name, lines):
    """Replace the block between this section's markers (or append it)."""
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    block = "\n".join([begin, *lines, end])
    text = BENCH.read_text() if BENCH.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    BENCH.write_text(text)


def dataset(customers, months, hive, prefix="scale"):
    data = WORK / f"{prefix}-{customers // 1000}k-{months}{'-hive' if hive else ''}"
    gen = None
    if not (data / "truth" / "ground_truth.json").exists():
        shutil.rmtree(data, ignore_errors=True)
        cmd = [BIN, "--quiet", "gen", "--out", str(data), "--customers", str(customers), "--months", str(months), "--seed", "7"]
        gen = measure(cmd + (["--hive"] if hive else []))
    return data, gen


def scale():
    sizes = [int(x) for x in os.environ.get("SCALE_CUSTOMERS", "1000000,3000000,10000000").split(",")]
    months = 36
    commit = head()
    # Sizes not measured in this call keep their last figures (with the commit they
    # were measured at), so one size can be re-measured alone.
    saved = WORK / "scale-runs.json"
    kept = [r for r in (json.loads(saved.read_text()) if saved.exists() else []) if r["customers"] not in sizes]
    runs = []
    for customers in sizes:
        data, gen = dataset(customers, months, True)
        rows = rows_of(data)
        scan = measure_median([BIN, "--quiet", "scan", "--data", str(data), "--all-tables"])
        alone = measure_median([BIN, "--quiet", "validate", "--data", str(data)])
        out = WORK / f"scale-out-{customers // 1000}k"
        wall, rss, code = measure([BIN, "--quiet", "run", "--data", str(data), "--out", str(out)], allow_failure=True)
        manifest = json.loads((out / "run.json").read_text()) if code == 0 else {}
        stages = manifest.get("stages", [])
        decoded = manifest.get("inputs", {}).get("decoded", [])
        rss = run_peak(rss, stages)
        runs.append(dict(customers=customers, rows=rows, gen=gen, scan=scan, validate=alone, wall=wall, rss=rss,
                         stages=stages, decoded=decoded, code=code, commit=commit,
                         date=datetime.date.today().isoformat()))
        print(f"{customers:,}: run exit {code}, {wall:.0f} s, peak {rss:,.0f} MiB, scan {scan[0]:.1f} s", flush=True)
        shutil.rmtree(out, ignore_errors=True)
        every = sorted(kept + runs, key=lambda r: r["customers"])
        saved.write_text(json.dumps(every, indent=1))
        write_section("scale", scale_lines(every, months))


def decode_lines(runs, months):
    """How many times each table was decoded whole (run.json `inputs.decoded`): values decoded over the
    table's rows x columns, from its files and from the run's bucket copy."""
    with_counts = [r for r in runs if r.get("decoded")]
    if not with_counts:
        return []
    tables = list(dict.fromkeys(d["table"] for r in with_counts for d in r["decoded"]))
    lines = ["", "Decodes of each table (run.json `inputs.decoded`: values decoded over the table's rows x columns; "
             "input files / the run's bucket copy):", "",
             "| table | " + " | ".join(f"{r['customers'] // 1_000_000}M x {months}" for r in with_counts) + " |",
             "|---|" + "---:|" * len(with_counts)]
    for t in tables:
        cells = []
        for r in with_counts:
            got = {d["source"]: d.get("full_decodes") for d in r["decoded"] if d["table"] == t}
            cells.append(" / ".join(f"{got[s]:.2f}" if got.get(s) is not None else "-" for s in ("input", "bucket_copy")))
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    worst = max(d["full_decodes"] or 0 for r in with_counts for d in r["decoded"] if d["source"] == "input")
    lines += ["", f"Goal: each input table decoded at most twice per run; the most decoded input table: {worst:.2f} times: "
              + ("met." if worst <= 2.0 else "not met.")]
    return lines


def measured_at(r):
    return f"{r.get('date', '')} `{r['commit']}`" if r.get("commit") else ""


def scale_lines(runs, months):
    lines = [
        "## Scale on one machine (`make bench-scale`)",
        "",
        f"Written by `make bench-scale` on {datetime.date.today().isoformat()}, same machine as above. "
        f"Datasets: `loyalty gen --out DIR --customers N --months {months} --seed 7 --hive` (billing in one folder "
        "per month). The run: `loyalty run --data DIR --out OUT` with the default configuration (strict validation, "
        "churn model on five snapshots, every output). Per-stage peak RSS is the kernel's high-water mark, reset at "
        "the start of each stage (run.json); the run's peak is the largest of them. The bare scan is "
        "`loyalty scan --all-tables` (read and sum every column of every table). Validation alone is "
        "`loyalty validate --data DIR`. Both are the median of three runs (a scan of files in the page cache "
        "varies by up to 70% from run to run here; the three times are listed below the table). In the run, validation's first pass also writes the customer-bucketed copy "
        "(the validate stage), and the features at T read the copy.",
        "",
        "| customers x months | billing rows | all rows | run wall time | run peak RSS | billing rows/s (run) | bare scan | validation alone / bare scan | validate stage (with the copy) / bare scan | features / bare scan | measured at |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        rows = r["rows"]
        all_rows = sum(n for t, n in rows.items() if not t.startswith("truth/"))
        if r["code"] != 0:
            lines.append(f"| {r['customers']:,} x {months} | {rows['billing']:,} | {all_rows:,} | failed (exit {r['code']}) "
                         f"after {r['wall']:.0f} s | {r['rss'] / MIB:.2f} GiB | | {r['scan'][0]:.1f} s | | | | {measured_at(r)} |")
            continue
        stage = {s["stage"]: s["wall_seconds"] for s in r["stages"]}
        alone = f"{r['validate'][0] / r['scan'][0]:.2f}x" if r.get("validate") else ""
        lines.append(
            f"| {r['customers']:,} x {months} | {rows['billing']:,} | {all_rows:,} | {r['wall']:.0f} s | "
            f"{r['rss'] / MIB:.2f} GiB | {rows['billing'] / r['wall']:,.0f} | {r['scan'][0]:.1f} s | {alone} | "
            f"{stage['validate'] / r['scan'][0]:.2f}x | {stage['features'] / r['scan'][0]:.2f}x | {measured_at(r)} |"
        )
    spreads = [r for r in runs if len(r["scan"]) > 2]
    if spreads:
        lines += ["", "Bare scan, three runs: " + "; ".join(
            f"{r['customers'] // 1_000_000}M: " + ", ".join(f"{w:.1f}" for w in r["scan"][2]) + " s" for r in spreads)
            + ". Validation alone, three runs: " + "; ".join(
            f"{r['customers'] // 1_000_000}M: " + ", ".join(f"{w:.1f}" for w in r["validate"][2]) + " s"
            for r in spreads if r.get("validate") and len(r["validate"]) > 2) + "."]
    budget = 8 * MIB
    within = [r for r in runs if r["code"] == 0 and r["rss"] <= budget]
    over = ", ".join(f"{r['customers']:,}" for r in runs if r not in within)
    lines += ["", f"Memory budget: 8 GiB. {len(within)} of {len(runs)} runs completed within it"
              + ("." if not over else f" (over it or failed: {over} customers).")]
    goal = [r for r in runs if r["customers"] == 10_000_000 and r["code"] == 0]
    if goal:
        r = goal[0]
        met = r["wall"] <= 300 and r["rss"] <= 4 * MIB
        lines += ["", f"Goal at 10M x {months}: the whole run in at most 5 min under 4 GiB; measured "
                  f"{r['wall'] / 60:.1f} min and {r['rss'] / MIB:.2f} GiB: " + ("met." if met else "not met.")]
    lines += ["", "Per stage (wall time / peak RSS / resident at the stage's start: what the stages before left held, "
              "mostly the customers table at T):", ""]
    names = []
    for r in runs:
        names += [s["stage"] for s in r["stages"] if s["stage"] not in names]
    lines.append("| stage | " + " | ".join(f"{r['customers'] // 1_000_000}M x {months}" for r in runs) + " |")
    lines.append("|---|" + "---:|" * len(runs))
    for name in names:
        cells = []
        for r in runs:
            s = next((s for s in r["stages"] if s["stage"] == name), None)
            cells.append(stage_cell(s) if s else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += decode_lines(runs, months)
    base = runs[0]
    lines += ["", "Growth from the smallest size (time per billing row and memory; linear time keeps the first ratio "
              "near 1, flat memory keeps the second near 1 and far below the growth in rows):", "",
              "| customers | rows vs smallest | wall time vs smallest | time per row vs smallest | "
              "time per row without the churn model stage vs smallest | peak RSS vs smallest |",
              "|---:|---:|---:|---:|---:|---:|"]

    def without_churn(r):
        # The churn model's training has a fixed size (its sample and its trees), whatever the rows.
        return r["wall"] - sum(s["wall_seconds"] for s in r["stages"] if s["stage"] == "churn model")

    for r in runs:
        k = r["rows"]["billing"] / base["rows"]["billing"]
        t = r["wall"] / base["wall"]
        rest = without_churn(r) / without_churn(base)
        lines.append(f"| {r['customers']:,} | {k:.2f}x | {t:.2f}x | {t / k:.2f}x | {rest / k:.2f}x | "
                     f"{r['rss'] / base['rss']:.2f}x |")
    gens = [r for r in runs if r["gen"]]
    if gens:
        lines += ["", "Generating the datasets: " + "; ".join(
            f"{r['customers']:,} x {months}: {r['gen'][0]:.0f} s, peak {r['gen'][1]:,.0f} MiB" for r in gens) + "."]
    lines += ["", "Reproduce: `make bench-scale` (datasets are kept in bench-data/; `SCALE_CUSTOMERS=1000000,3000000` "
              "for a shorter run)."]
    return lines


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / MIB
    return float("nan")


def engines():
    data, _ = dataset(1_000_000, 24, False, prefix="gen")  # the dataset `make bench` uses
    rows = rows_of(data)["billing"]
    out = WORK / "engines-out"
    out.mkdir(exist_ok=True)
    as_of = "2024-12-31"
    agg = [BIN, "--quiet", "features", "--data", str(data), "--as-of", as_of, "--skip-validation", "--stage", "aggregates"]
    port = free_port()
    cluster = subprocess.Popen([BIN, "--quiet", "cluster", "--port", str(port), "--executors", "2", "--vcores", "1"],
                               stdout=subprocess.PIPE)
    url = cluster.stdout.readline().decode().strip()
    try:
        results = [
            ("local (Polars streaming, in process)", measure(agg + ["--out", str(out / "local.parquet")])),
            ("Ballista (1 scheduler + 2 executors, 4 partitions)", measure(
                agg + ["--engine", "ballista", "--scheduler", url, "--target-partitions", "4",
                       "--out", str(out / "ballista.parquet")])),
        ]
        cluster_peak = vm_hwm_mib(cluster.pid)
    finally:
        cluster.terminate()
        cluster.wait()
    duck = measure([PEER_PY, str(ROOT / "bench" / "peers.py"), "duckdb", str(data), as_of, str(out / "duckdb.parquet")])
    results.append(("DuckDB (bench/features.sql, 2 threads)", duck))
    check = subprocess.run([PEER_PY, str(ROOT / "bench" / "compare.py"), str(out / "local.parquet"),
                            str(out / "ballista.parquet"), str(out / "duckdb.parquet")], capture_output=True, text=True)
    if check.returncode != 0:
        sys.exit("the engines disagree: " + check.stdout)
    base = results[0][1][0]
    lines = [
        "## The aggregation on three engines (`make bench-engines`)",
        "",
        f"Written by `make bench-engines` on {datetime.date.today().isoformat()} at {commit()}, same machine. The per-customer "
        f"aggregation stage (`loyalty features --skip-validation --stage aggregates`, as of {as_of}) on 1,000,000 "
        f"customers x 24 months ({rows:,} billing rows, one file per chunk). Ballista runs the billing, top-up, "
        "interaction and survey aggregations as DataFusion SQL jobs on a cluster started by `loyalty cluster` on "
        "this machine (one scheduler, two executors with one task slot each, so the two cores are shared as in the "
        "local run); the client places the results onto the base as the local engine does. The wall time of the "
        "Ballista row is the client's, with the cluster already up; its peak RSS is the client's, and the cluster "
        f"process (scheduler and both executors) peaked at {cluster_peak:,.0f} MiB. `loyalty` builds DataFusion and "
        "Ballista without optimisation (docs/performance.md), so the Ballista row measures this trial cluster, not "
        "Ballista's own release builds.",
        "",
        "| engine | wall time | billing rows/s | peak RSS | vs local |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (wall, rss) in results:
        lines.append(f"| {name} | {wall:.1f} s | {rows / wall:,.0f} | {rss:,.0f} MiB | {wall / base:.2f}x |")
    lines += ["", "Same numbers (`bench/compare.py`, 1e-6 relative): " +
              check.stdout.strip().replace("\n", "; ").replace(str(out) + "/", "")]
    write_section("engines", lines)
    shutil.rmtree(out, ignore_errors=True)


def stage_seconds(run_json_path, stage):
    run = json.loads(pathlib.Path(run_json_path).read_text())
    return next(s["wall_seconds"] for s in run["stages"] if s["stage"] == stage)


def cpu_ticks():
    """(steal, total) CPU ticks of the machine so far (/proc/stat)."""
    fields = [int(v) for v in pathlib.Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return fields[7] if len(fields) > 7 else 0, sum(fields)


def churn():
    """`loyalty run` against the hand-written job (DuckDB features + LightGBM), same snapshots."""
    steal0, total0 = cpu_ticks()
    version = subprocess.run([PEER_PY, "-c", "import lightgbm; print(lightgbm.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    lines = [
        "## Churn models: `loyalty run` vs a hand-written DuckDB + LightGBM job",
        "",
        f"Peer (`bench/churn_peer.py`): the features at every snapshot date and at T in DuckDB SQL "
        f"(`bench/features.sql`, 2 threads), LightGBM {version} per plan type (300 trees, 31 leaves, learning "
        "rate 0.05, 2 threads), trained on the same training snapshots with the same row cap, tested out of time "
        "on the same test snapshot, refitted on every snapshot, scoring the customers at T. `loyalty run` is the "
        "whole run (validation, features, churn models, CLV, segments, curves, report), run twice: the second "
        "run's outputs are compared byte for byte with the first's. Out-of-time AUC: the ROC AUC on the test "
        "snapshot of the model that scores each plan type; LightGBM's both on the SQL features and on loyalty's "
        "own training and test rows (`loyalty churn train --designs-out`: the same features, the same rows). "
        "Future AUC: how well the scores at T rank the churn of the h months after T that the generator "
        "recorded but did not write into the data (ceiling: the generator's true probabilities).",
        "",
        "| dataset | plan | loyalty model | out-of-time AUC: loyalty / LightGBM (SQL features) / LightGBM "
        "(loyalty's features) | future AUC: loyalty / LightGBM / ceiling | loyalty run (1st / 2nd) | churn stage | "
        "peer total (features / fits / scoring) | run peak RSS | identical outputs |",
        "|---|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    cases = [("demo 20k x 24", "demo", ["--customers", "20000", "--months", "24", "--seed", "42"]),
             ("1M x 36 (hive)", "1m36", ["--customers", "1000000", "--months", "36", "--seed", "7", "--hive"])]
    only = os.environ.get("CHURN_CASES")
    for label, slug, gen_args in cases:
        if only and slug not in only.split(","):
            continue
        data = WORK / f"churn-{slug}"
        if not (data / "customers.parquet").exists():
            measure([BIN, "--quiet", "gen", "--out", str(data), *gen_args])
        runs = []
        for k in (1, 2):
            out = WORK / f"churn-{slug}-out{k}"
            wall, rss = measure([BIN, "--quiet", "run", "--data", str(data), "--out", str(out)])
            runs.append((out, wall, rss))
        identical = subprocess.run(
            ["diff", "-rq", "--exclude=run.json", "--exclude=report.html", "--exclude=model_quality.json",
             str(runs[0][0]), str(runs[1][0])], capture_output=True, text=True).returncode == 0
        out = runs[0][0]
        q = json.loads((out / "model_quality.json").read_text())
        designs = WORK / f"churn-{slug}-designs"
        subprocess.run([BIN, "--quiet", "churn", "train", "--data", str(data), "--designs-out", str(designs),
                        "--format", "json"], check=True, stdout=subprocess.DEVNULL)
        peer_json = WORK / f"churn-{slug}-peer.json"
        subprocess.run([PEER_PY, str(ROOT / "bench" / "churn_peer.py"), str(data), str(out / "model_quality.json"),
                        str(peer_json), "--designs", str(designs), "--ours", str(out / "customers.parquet")],
                       check=True)
        peer = json.loads(peer_json.read_text())
        ps = peer["seconds"]
        churn = stage_seconds(out / "run.json", "churn model")
        for plan in q["plans"]:
            name = plan["plan"]
            ours = next(m["roc_auc"] for m in plan["out_of_time"] if m["model"] == plan["scoring_model"])
            theirs = peer["plans"].get(name, {})
            same = theirs.get("same_features", {}).get("roc_auc", float("nan"))
            f = peer["future"].get(name, {})
            h = q["horizon_months"]
            future = (f"{f.get('p_loyalty', float('nan')):.4f} / {f.get('p_peer', float('nan')):.4f} / "
                      f"{f.get(f'true_p_churn_{h}m', float('nan')):.4f}") if f else "no truth"
            lines.append(
                f"| {label} | {name} | {plan['scoring_model']} | {ours:.4f} / {theirs.get('roc_auc', float('nan')):.4f}"
                f" / {same:.4f} | {future} | "
                f"{runs[0][1]:.1f} s / {runs[1][1]:.1f} s | {churn:.1f} s ({100 * churn / runs[0][1]:.0f}%) | "
                f"{ps['total']:.1f} s ({ps['features']:.1f} / {ps['fits']:.1f} / {ps['scoring']:.1f}) | "
                f"{runs[0][2]:,.0f} MiB | {'yes' if identical else 'NO'} |"
            )
            print(lines[-1], flush=True)
        if q.get("prepaid_bgnbd"):
            lines.append(f"| {label} | prepaid | BG/NBD (no prepaid churn observed) | | | | | | | |")
    steal1, total1 = cpu_ticks()
    stolen = 100.0 * (steal1 - steal0) / max(1, total1 - total0)
    lines += ["", f"Cases measured in this run: {only or 'all'}. CPU time taken by the hypervisor (steal) "
              f"while it ran: {stolen:.0f}% (times are only comparable between runs with little steal).",
              "", f"Measured at commit {commit()}. Commands: `loyalty run --data DIR --out OUT` (defaults), "
              "`loyalty churn train --data DIR --designs-out D`, "
              "`churn_peer.py DIR OUT/model_quality.json PEER.json --designs D --ours OUT/customers.parquet`. "
              "Identical outputs: every file but run.json, report.html and model_quality.json (they carry "
              "timings).", ""]
    write_section("churn", lines)


def run_reads_case(data, out, env_extra):
    """One `loyalty run` with extra environment: wall time, peak RSS, stages."""
    wall, rss = measure([BIN, "--quiet", "run", "--data", str(data), "--out", str(out)], env=dict(os.environ, **env_extra))
    stages = json.loads((out / "run.json").read_text())["stages"]
    shutil.rmtree(out, ignore_errors=True)
    return dict(wall=wall, rss=run_peak(rss, stages), stages=stages)


# The stages shown per reads case: every stage that reads data or holds the table at T.
READS_STAGES = ["validate", "churn model", "features", "clv", "segments", "curves", "retention"]


def reads():
    sizes = [int(x) for x in os.environ.get("SCALE_CUSTOMERS", "1000000").split(",")]
    cases = [("memory-mapped (default)", {}), ("POLARS_FORCE_ASYNC=1", {"POLARS_FORCE_ASYNC": "1"})]
    lines = ["## Reading local files: memory-mapped or bounded reads (`make bench-reads`)", "",
             f"Written by `make bench-reads` on {datetime.date.today().isoformat()} at {commit()}, same machine. "
             "The whole `loyalty run --data DIR --out OUT` (defaults) on the scale datasets, once with polars' default "
             "reads of local Parquet files (memory-mapped) and once with `POLARS_FORCE_ASYNC=1` (bounded reads through "
             "its async reader), back to back. Peak RSS as in the scale section (the largest per-stage high-water "
             "mark); read MiB is `rchar` of /proc/self/io summed over the stages (it does not see memory-mapped pages), "
             "and over the dataset's Parquet bytes it says how many times the run read the data: under bounded reads, "
             "where every byte goes through a read call.", "",
             "| customers x months | reads | wall time | peak RSS | read MiB | read / dataset size | "
             + " | ".join(READS_STAGES) + " |",
             "|---|---|---:|---:|---:|---:|" + "---:|" * len(READS_STAGES)]
    for customers in sizes:
        data, _ = dataset(customers, 36, True)
        size_mib = sum(f.stat().st_size for f in data.rglob("*.parquet") if "truth" not in f.parts) / MIB / MIB
        # The larger sizes first read the other way round, so neither mode always runs second.
        for name, env in (cases if customers == sizes[0] else cases[::-1]):
            r = run_reads_case(data, WORK / f"reads-out-{customers // 1000}k", env)
            st = {s["stage"]: s for s in r["stages"]}
            read = sum(s.get("read_mib") or 0.0 for s in r["stages"])
            cell = lambda k: f"{st[k]['wall_seconds']:.1f} s / {st[k]['peak_rss_mib'] / MIB:.2f} GiB" if k in st else ""
            lines.append(f"| {customers:,} x 36 | {name} | {r['wall']:.0f} s | {r['rss'] / MIB:.2f} GiB | {read:,.0f} | "
                         + (f"{read / size_mib:.1f}x | " if env else " | ")
                         + " | ".join(cell(k) for k in READS_STAGES)
                         + " |")
            print(f"{customers:,} {name}: {r['wall']:.0f} s, {r['rss']:,.0f} MiB", flush=True)
    lines += ["", "Stage cells: wall time / peak RSS. Reproduce: `make bench-reads` "
              "(`SCALE_CUSTOMERS=1000000,3000000` for more sizes)."]
    write_section("reads", lines)


# Crate families of a build: the first match names a unit's family.
FAMILIES = [("polars", r"^polars"), ("DataFusion, Ballista, arrow-rs and their RPC stack",
                                     r"^(datafusion|ballista|arrow|parquet$|sqlparser|prost|tonic|axum)"),
            ("loyalty (this workspace)", r"^loyalty"), ("everything else", r"")]


def timing_units(report):
    """The units of a `cargo build --timings` HTML report: name, target, seconds."""
    text = pathlib.Path(report).read_text()
    m = re.search(r"const UNIT_DATA = (\[.*?\]);", text, re.S)
    if not m:
        sys.exit(f"no UNIT_DATA in {report}")
    return [dict(name=u["name"], target=html.unescape(u.get("target", "")).strip(), seconds=u["duration"])
            for u in json.loads(m.group(1))]


def family_times(units):
    family_of = lambda name: next(f for f, pattern in FAMILIES if re.search(pattern, name))
    return {family: sum(u["seconds"] for u in units if family_of(u["name"]) == family) for family, _ in FAMILIES}


def record_build(report, wall, at, command):
    """Keep one cold build's figures (bench-data/build-runs.json) and rewrite the section."""
    units = timing_units(report)
    saved = WORK / "build-runs.json"
    runs = json.loads(saved.read_text()) if saved.exists() else []
    runs = [r for r in runs if r["commit"] != at]
    runs.append(dict(commit=at, date=datetime.date.today().isoformat(), wall=wall, command=command, units=len(units),
                     families=family_times(units),
                     slowest=[[u["name"] + (f" {u['target']}" if u["target"] else ""), u["seconds"]]
                              for u in sorted(units, key=lambda u: -u["seconds"])[:15]]))
    saved.write_text(json.dumps(runs, indent=1))
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    write_section("build", build_lines(runs, rustc))


def build_lines(runs, rustc):
    names = [f for f, _ in FAMILIES]
    lines = ["## Cold build (`make bench-build`)", "",
             f"Written by `make bench-build`, same machine (2 cores), {rustc}. What `make test` builds "
             f"(`{runs[-1]['command']}`) into an empty target folder: every dependency compiled, as on a fresh machine (downloads excluded: the "
             "registry cache was warm). Compile time is the sum of the units' times from `cargo --timings`; two cores "
             "overlap them, so the wall time is about half of it.", "",
             "| measured at | wall time | units | compile time | " + " | ".join(names) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(names)]
    for r in runs:
        total = sum(r["families"].values())
        lines.append(f"| {r['date']} `{r['commit']}` | **{r['wall'] / 60:.1f} min** | {r['units']} | {total / 60:.1f} min | "
                     + " | ".join(f"{r['families'][f] / 60:.1f} min ({r['families'][f] / total:.0%})" for f in names)
                     + " |")
    last = runs[-1]
    lines += ["", f"Slowest units at `{last['commit']}`:", "", "| unit | compile time |", "|---|---:|"]
    lines += [f"| {name} | {seconds:.0f} s |" for name, seconds in last["slowest"]]
    lines += ["", "Reproduce: `make bench-build` (about as long as the build; the cores must be otherwise idle)."]
    return lines


def build():
    features = os.environ.get("FEATURES", "loyalty-cli/ballista,loyalty-e2e/ballista")
    target = pathlib.Path(os.environ.get("BUILD_TARGET_DIR", "/var/tmp/loyalty-cold-build"))
    shutil.rmtree(target, ignore_errors=True)
    cargo = ["cargo", "build", "--release", "--workspace", "--all-targets"] + (["--features", features] if features else [])
    start = time.monotonic()
    subprocess.run(cargo + ["--timings"], cwd=ROOT, check=True, env=dict(os.environ, CARGO_TARGET_DIR=str(target)))
    wall = time.monotonic() - start
    record_build(target / "cargo-timings" / "cargo-timing.html", wall, head(), " ".join(cargo))
    print(f"cold build: {wall / 60:.1f} min (target kept in {target})")


if __name__ == "__main__":
    WORK.mkdir(exist_ok=True)
    for section in sys.argv[1:] or ["scale"]:
        {"scale": scale, "engines": engines, "churn": churn, "reads": reads, "build": build}[section]()
    print("wrote BENCHMARKS.md")
