//! What schedulers, operators and machines do to a run: point `--out` at the input,
//! kill it (SIGTERM, SIGINT, SIGKILL) at any stage, start it twice, leave dead runs'
//! folders behind, fill the disk. `--out` always holds the old run or the new one,
//! the input is never touched, and nothing else is left beside `--out`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{all_files, bin, loyalty, p, stderr};

struct Dataset {
    _tmp: tempfile::TempDir,
    data: PathBuf,
}

/// One generated dataset, big enough that a run takes a few seconds (so signals land
/// inside its stages), shared by the tests here.
fn dataset() -> &'static Dataset {
    static D: OnceLock<Dataset> = OnceLock::new();
    D.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let o = loyalty(&["gen", "--out", p(&data), "--customers", "4000", "--months", "24", "--seed", "5"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        Dataset { _tmp: tmp, data }
    })
}

fn run_args<'a>(data: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec!["run", "--data", p(data), "--out", p(out), "--quiet"]
}

fn spawn(args: &[&str]) -> Child {
    Command::new(bin())
        .args(args)
        .env_remove("LOYALTY_LENIENT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loyalty")
}

/// Wait for `child`, failing the test (not hanging it) if it does not end in time.
fn wait(mut child: Child, limit: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("loyalty did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success(), "kill -{name}");
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// A folder holding one finished run of the shared dataset.
fn finished_run() -> (tempfile::TempDir, PathBuf, BTreeMap<PathBuf, Vec<u8>>) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = loyalty(&run_args(&dataset().data, &out));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = all_files(&out);
    (tmp, out, before)
}

fn code(status: &ExitStatus) -> Option<i32> {
    status.code()
}

#[test]
fn an_output_that_is_inside_or_contains_the_input_is_refused_and_the_input_untouched() {
    let d = dataset();
    let before = all_files(&d.data);
    let parent = d.data.parent().unwrap();
    for (out, how) in [(d.data.clone(), "is the input"), (d.data.join("out"), "is inside"), (parent.into(), "contains")]
    {
        let o = loyalty(&run_args(&d.data, &out));
        assert_eq!(o.status.code(), Some(2), "{out:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(how), "{out:?}: {}", stderr(&o));
    }
    // A dataset folder is never an output folder, even when it is not this run's input.
    let o = loyalty(&["validate", "--data", p(&d.data), "--rejects", p(&d.data)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let other = tempfile::tempdir().unwrap();
    let copy = other.path().join("copy");
    fs::create_dir_all(&copy).unwrap();
    fs::copy(d.data.join("markets.parquet"), copy.join("markets.parquet")).unwrap();
    fs::copy(d.data.join(loyalty_io::DATASET_MARKER), copy.join(loyalty_io::DATASET_MARKER)).unwrap();
    let o = loyalty(&run_args(&d.data, &copy));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("holds a dataset"), "{}", stderr(&o));
    // Single-file outputs too.
    let o = loyalty(&["features", "--data", p(&d.data), "--out", p(&d.data.join("f.parquet"))]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is inside"), "{}", stderr(&o));
    assert_eq!(all_files(&d.data), before, "the dataset changed");
}

#[test]
fn every_reason_the_destination_cannot_be_written_is_found_before_any_stage() {
    // The dataset is broken too: had any stage run, validation would exit 1 first.
    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("broken");
    fs::create_dir_all(&broken).unwrap();
    fs::write(broken.join("customers.parquet"), "not parquet").unwrap();
    fs::write(broken.join("billing.parquet"), "not parquet").unwrap();
    let file = tmp.path().join("a-file");
    fs::write(&file, "x").unwrap();
    let others = tmp.path().join("others");
    fs::create_dir_all(&others).unwrap();
    fs::write(others.join("notes.txt"), "mine").unwrap();
    for (out, why) in
        [(file.clone(), "it is a file"), (file.join("out"), "a-file"), (others.clone(), "no .loyalty-output marker")]
    {
        let o = loyalty(&run_args(&broken, &out));
        assert_eq!(o.status.code(), Some(2), "{out:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{out:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("not_parquet"), "a stage ran before the destination check: {}", stderr(&o));
    }
    assert_eq!(fs::read_to_string(others.join("notes.txt")).unwrap(), "mine");
}

#[test]
fn leftovers_of_dead_runs_are_removed_by_the_next_run() {
    let (tmp, out, _) = finished_run();
    // What a kill leaves: a non-empty old folder (killed while removing it, by an
    // older version), a staging folder with partial files, a dead run's exchange folder.
    for leftover in [".out.old", ".out.tmp-999999-1", ".out.tmp-4242", ".out.exchange-999999"] {
        fs::create_dir_all(tmp.path().join(leftover).join("rejects")).unwrap();
        fs::write(tmp.path().join(leftover).join("rejects/customers.parquet"), "partial").unwrap();
    }
    let o = loyalty(&run_args(&dataset().data, &out));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(names(tmp.path()), ["out"]);
    assert!(out.join("run.json").exists());
}

#[test]
fn sigterm_and_sigint_at_any_stage_leave_out_as_it_was() {
    let (tmp, out, before) = finished_run();
    let mut stopped = 0;
    for (delay_ms, sig, expected) in
        [(150, "TERM", 143), (600, "TERM", 143), (1500, "INT", 130), (2500, "TERM", 143), (4000, "TERM", 143)]
    {
        let child = spawn(&run_args(&dataset().data, &out));
        std::thread::sleep(Duration::from_millis(delay_ms));
        signal(&child, sig);
        let o = wait(child, Duration::from_secs(60));
        let err = stderr(&o);
        if code(&o.status) == Some(0) {
            // Finished before the signal: fully replaced, which is allowed.
            assert!(all_files(&out).keys().eq(before.keys()), "{err}");
        } else {
            stopped += 1;
            assert_eq!(code(&o.status), Some(expected), "SIG{sig} after {delay_ms} ms: {err}");
            assert_eq!(err.matches("stopped by SIG").count(), 1, "one line: {err}");
            assert_eq!(all_files(&out), before, "SIG{sig} after {delay_ms} ms changed --out");
        }
        assert_eq!(names(tmp.path()), ["out"], "SIG{sig} after {delay_ms} ms left files beside --out");
    }
    assert!(stopped >= 3, "only {stopped} of 5 runs were stopped: the run is too short for this test");
}

#[test]
fn sigkill_at_any_stage_then_a_rerun_leaves_only_the_new_outputs() {
    let (tmp, out, before) = finished_run();
    for delay_ms in [200, 900, 2000, 3500] {
        let child = spawn(&run_args(&dataset().data, &out));
        std::thread::sleep(Duration::from_millis(delay_ms));
        signal(&child, "KILL");
        let o = wait(child, Duration::from_secs(60));
        if o.status.code() != Some(0) {
            assert_eq!(all_files(&out), before, "SIGKILL after {delay_ms} ms changed --out");
        }
    }
    let o = loyalty(&run_args(&dataset().data, &out));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(names(tmp.path()), ["out"], "the rerun left dead runs' files beside --out");
    assert!(all_files(&out).keys().eq(before.keys()));
}

#[test]
fn a_second_run_on_the_same_output_fails_at_once_naming_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let first = spawn(&run_args(&dataset().data, &out));
    let lock = tmp.path().join(".out.lock");
    let started = Instant::now();
    while !fs::read_to_string(&lock).is_ok_and(|s| !s.is_empty()) {
        assert!(started.elapsed() < Duration::from_secs(30), "the first run never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = loyalty(&run_args(&dataset().data, &out));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("pid {}", first.id())), "names the holder: {}", stderr(&o));
    // The lock dies with its process, even one that cannot clean up.
    signal(&first, "KILL");
    wait(first, Duration::from_secs(30));
    let o = loyalty(&run_args(&dataset().data, &out));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(names(tmp.path()), ["out"]);
}

#[test]
fn a_full_disk_names_the_file_being_written_and_keeps_out() {
    let (tmp, out, before) = finished_run();
    let config = tempfile::tempdir().unwrap();
    let at_once = config.path().join("at-once.toml");
    fs::write(&at_once, "[model]\ncustomers_per_partition = 0\n").unwrap();
    // 256 KiB per file: validation's bucket copy does not fit; without the copy,
    // validation and every stage pass and the customers table does not fit.
    for (config, file) in [(None, "bucket-0/part-00000.parquet"), (Some(&at_once), "customers.parquet")] {
        let mut args = run_args(&dataset().data, &out);
        if let Some(config) = config {
            args.extend(["--config", p(config)]);
        }
        let script = format!("ulimit -f 256; exec {} {}", p(&bin()), args.join(" "));
        let o = Command::new("bash").args(["-c", &script]).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(file) && err.contains("too large"), "names the file and why: {err}");
        assert_eq!(all_files(&out), before);
        assert_eq!(names(tmp.path()), ["out"]);
    }
}
