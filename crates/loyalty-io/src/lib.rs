//! Filesystem access for `loyalty`: this is the only crate that opens files.

pub mod buckets;
pub mod dataset;
pub mod error;
pub mod fingerprint;
pub mod import;
pub mod output;
pub mod write;

pub use buckets::BucketCopy;
pub use dataset::{
    DataFile, check_parquet, find_unreadable_file, footer_rows, list_files, locate_table, open_dataset, panic_text,
    scan_files,
};
pub use error::IoError;
pub use fingerprint::{InputFile, fingerprints};
pub use output::{
    DATASET_MARKER, Holds, OUTPUT_MARKER, OutputDir, ScratchDir, ScratchKind, check_output_file, write_file_atomic,
};
pub use write::{
    AppendWriter, ScratchWriter, read_parquet_columns, read_text, sink_parquet, write_csv, write_json, write_parquet,
    write_table_atomic, write_text,
};
