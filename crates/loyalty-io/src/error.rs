use std::path::PathBuf;

use loyalty_contract::Table;
use polars::prelude::PolarsError;

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("dataset folder {path} does not exist or is not a folder")]
    NoDataset { path: PathBuf },
    #[error("required table `{table}` is missing: expected {dir}/{table}.parquet or {dir}/{table}/ (rule: missing_table)", dir = .dir.display())]
    MissingTable { table: Table, dir: PathBuf },
    #[error("table `{table}` is both {first} and {second}; keep one", first = .first.display(), second = .second.display())]
    Ambiguous { table: Table, first: PathBuf, second: PathBuf },
    #[error("table `{table}` at {path} has no data files", path = .path.display())]
    NoFiles { table: Table, path: PathBuf },
    #[error("table `{table}` mixes partition layouts: {first} and {other}", first = .first.display(), other = .other.display())]
    MixedPartitions { table: Table, first: PathBuf, other: PathBuf },
    #[error("{path} is not a Parquet file (rule: not_parquet): {reason}", path = .path.display())]
    NotParquet { path: PathBuf, reason: String },
    #[error("{path} cannot be read (rule: {rule}): {detail}", path = .path.display())]
    Unreadable { path: PathBuf, rule: &'static str, detail: String },
    #[error("{path} does not belong to table `{table}` (rule: schema_mismatch): it {detail}, unlike {first}", path = .path.display(), first = .first.display())]
    ForeignFile { table: Table, path: PathBuf, first: PathBuf, detail: String },
    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Polars {
        context: String,
        #[source]
        source: PolarsError,
    },
    #[error("refusing to replace {path}: {reason}; pick an empty or new folder for outputs", path = .path.display())]
    NotAnOutput { path: PathBuf, reason: String },
    #[error("refusing to write {path}: it {how} the input {input}; pick an output folder outside the dataset", path = .path.display(), input = .input.display())]
    OverlapsInput { path: PathBuf, input: PathBuf, how: &'static str },
    #[error("{path} is being written by another run: {holder} holds {lock}", path = .path.display(), lock = .lock.display())]
    Locked { path: PathBuf, lock: PathBuf, holder: String },
    #[error(transparent)]
    Interrupted(#[from] loyalty_contract::cancel::Interrupted),
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    #[error("{path}: {source}", path = .path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl IoError {
    /// True when the error is the input's fault (exit code 1), not ours or the system's.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            IoError::NoDataset { .. }
                | IoError::MissingTable { .. }
                | IoError::Ambiguous { .. }
                | IoError::NoFiles { .. }
                | IoError::MixedPartitions { .. }
                | IoError::NotParquet { .. }
                | IoError::Unreadable { .. }
                | IoError::ForeignFile { .. }
                | IoError::Import(_)
        )
    }
}
