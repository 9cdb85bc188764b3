//! Filesystem access for `loyalty`: this is the only crate that opens files.

pub mod dataset;
pub mod error;
pub mod fingerprint;
pub mod import;
pub mod write;

pub use dataset::{DataFile, check_parquet, list_files, locate_table, open_dataset, scan_files};
pub use error::IoError;
pub use fingerprint::{InputFile, fingerprints};
pub use write::{
    AppendWriter, OUTPUT_MARKER, OutputDir, read_text, sink_parquet, write_csv, write_json, write_parquet,
    write_parquet_atomic, write_text,
};
