//! End-to-end tests: the `loyalty` binary on real files, as a scheduler runs it.

#[cfg(feature = "ballista")]
mod ballista;
mod contract_rules;
mod full_run;
mod generator;
mod independent_producer;
mod interface;
mod models;
mod scheduler;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `loyalty` binary: `LOYALTY_BIN`, or the release binary beside this test.
pub fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LOYALTY_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target profile folder");
    let bin = dir.join("loyalty");
    assert!(bin.exists(), "{} not built: run `make test` (it builds the binary first)", bin.display());
    bin
}

pub fn loyalty(args: &[&str]) -> Output {
    Command::new(bin()).args(args).env_remove("LOYALTY_LENIENT").output().expect("run loyalty")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The checkout under test. `cargo test` sets CARGO_MANIFEST_DIR when it runs the test;
/// the compile-time value is only a fallback, since clones sharing one target folder
/// (CARGO_TARGET_DIR) can reuse a test binary built in another clone.
pub fn repo_root() -> PathBuf {
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.parent().expect("repo root").to_path_buf()
}

/// Every file under `dir` (recursively) with its bytes.
pub fn all_files(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_files(&path));
        } else {
            out.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    out
}

pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn usage_errors_exit_2_and_help_lists_commands() {
    let o = loyalty(&["validate"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = loyalty(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = stdout(&o);
    for cmd in ["gen", "validate", "run"] {
        assert!(help.contains(cmd), "{help}");
    }
    assert!(help.contains("Exit codes"), "{help}");
}
