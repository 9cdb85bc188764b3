//! Finding the tables of a dataset folder and scanning them lazily.
//!
//! A table is `<name>.parquet` (a file, or a folder of files) or `<name>/`. Folders
//! are walked recursively; `key=value` folder names are hive partitions whose values
//! become columns (typed as the contract's column when the value reads as that
//! type, as text otherwise, for the contract layer to report). Names starting with `_`
//! or `.` (`_SUCCESS`, `.crc` files) are skipped, as Spark and Hive writers expect.
//! Every file is checked to be Parquet before any scan, so a stray CSV is named
//! rather than surfacing as an obscure decoder error.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use loyalty_contract::partition::customer_column;
use loyalty_contract::reads::Source;
use loyalty_contract::{Kind, RawDataset, RawTable, Table, col};
use polars::prelude::*;

use crate::error::IoError;

/// A data file of a table and the hive partition values on its path.
#[derive(Debug, Clone)]
pub struct DataFile {
    pub path: PathBuf,
    pub partitions: Vec<(String, String)>,
}

/// Where a table lives in `dir`, if it is there.
pub fn locate_table(dir: &Path, table: Table) -> Result<Option<PathBuf>, IoError> {
    let file = dir.join(format!("{}.parquet", table.name()));
    let folder = dir.join(table.name());
    match (file.exists(), folder.is_dir()) {
        (true, true) => Err(IoError::Ambiguous { table, first: file, second: folder }),
        (true, false) => Ok(Some(file)),
        (false, true) => Ok(Some(folder)),
        (false, false) => Ok(None),
    }
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('.')
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every data file under `root` (or `root` itself), sorted by path.
pub fn list_files(root: &Path) -> Result<Vec<DataFile>, IoError> {
    let io = |e| IoError::Io { path: root.to_path_buf(), source: e };
    if root.is_file() {
        return Ok(vec![DataFile { path: root.to_path_buf(), partitions: vec![] }]);
    }
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), Vec::<(String, String)>::new())];
    while let Some((dir, parts)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_hidden(&name) {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                let mut parts = parts.clone();
                if let Some((k, v)) = name.split_once('=') {
                    parts.push((k.to_string(), percent_decode(v)));
                }
                stack.push((path, parts));
            } else {
                out.push(DataFile { path, partitions: parts.clone() });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Fail unless `path` starts and ends with the Parquet magic bytes.
pub fn check_parquet(path: &Path) -> Result<(), IoError> {
    let not = |reason: &str| IoError::NotParquet { path: path.to_path_buf(), reason: reason.to_string() };
    let io = |e| IoError::Io { path: path.to_path_buf(), source: e };
    let mut f = File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    if len < 12 {
        return Err(not("file is too short to be Parquet"));
    }
    let mut head = [0u8; 4];
    let mut tail = [0u8; 4];
    f.read_exact(&mut head).map_err(io)?;
    f.seek(SeekFrom::End(-4)).map_err(io)?;
    f.read_exact(&mut tail).map_err(io)?;
    if &head != b"PAR1" || &tail != b"PAR1" {
        return Err(not("missing the PAR1 magic bytes (is it CSV, or a truncated write?)"));
    }
    Ok(())
}

fn path_ref(p: &Path) -> PlRefPath {
    PlRefPath::new(p.to_string_lossy().as_ref())
}

/// How a scan of the input reads file `p`: as a `file://` address, which polars reads
/// in bounded reads rather than mapping the file whole. A mapped file's pages stay
/// resident while it is scanned: the validation of 10M customers held the 1.7 GB top-up
/// file at once (1.75 GiB of the run's peak). A path that is not plain text of the
/// characters an address surely takes as they are (letters, digits, `/._-=`) is read
/// mapped, as polars reads a path.
/// The scratch copy keeps being mapped: read whole in small buckets, its pages never
/// add up, and bounded reads of it held 0.2 GiB more in the features stage.
fn read_ref(p: &Path) -> PlRefPath {
    let plain = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-=".contains(&b));
    match std::path::absolute(p) {
        Ok(abs) if abs.to_str().is_some_and(plain) => PlRefPath::new(format!("file://{}", abs.display())),
        _ => path_ref(p),
    }
}

/// A file's path from how [`read_ref`] named it.
fn scanned_path(name: &str) -> &str {
    name.strip_prefix("file://").unwrap_or(name)
}

/// The schema in one file's footer; a footer Polars cannot read (a corrupt file, or
/// two columns of the same name) is the input's fault, named with its file and rule.
fn file_schema(path: &Path) -> Result<Schema, IoError> {
    let schema = decode_guarded(path, || {
        LazyFrame::scan_parquet(path_ref(path), ScanArgsParquet::default()).and_then(|mut lf| lf.collect_schema())
    })?;
    Ok(schema.as_ref().clone())
}

/// Run a Polars read of `path`, turning its error, or its panic (the Parquet decoder
/// panics on some corrupt footers and pages), into the rule the file breaks.
fn decode_guarded<T>(path: &Path, read: impl FnOnce() -> PolarsResult<T>) -> Result<T, IoError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(unreadable(path, &e)),
        Err(payload) => Err(IoError::Unreadable {
            path: path.to_path_buf(),
            rule: "corrupt_file",
            detail: format!("the Parquet decoder failed: {}", panic_text(payload.as_ref())),
        }),
    }
}

/// The message of a panic payload.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// A decoder error on `path` as the contract rule it breaks.
fn unreadable(path: &Path, e: &PolarsError) -> IoError {
    let message = e.to_string();
    let rule = if message.to_lowercase().contains("duplicate") { "duplicate_column" } else { "corrupt_file" };
    IoError::Unreadable { path: path.to_path_buf(), rule, detail: message.lines().next().unwrap_or("").to_string() }
}

/// How the columns of `schema` differ from the first file's, if they do.
fn schema_difference(first: &Schema, schema: &Schema) -> Option<String> {
    let mut why = Vec::new();
    let missing: Vec<&str> = first.iter_names().filter(|n| schema.get(n).is_none()).map(|n| n.as_str()).collect();
    let extra: Vec<&str> = schema.iter_names().filter(|n| first.get(n).is_none()).map(|n| n.as_str()).collect();
    if !missing.is_empty() {
        why.push(format!("lacks column(s) {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        why.push(format!("has column(s) {} the others do not", extra.join(", ")));
    }
    for (name, dtype) in schema.iter() {
        if let Some(expected) = first.get(name).filter(|e| *e != dtype) {
            why.push(format!("column `{name}` is {dtype}, not {expected}"));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// Every file of a table must have the columns and types of the first (a stray export
/// of another table in the folder is named, not reported against the folder).
fn check_same_schema(table: Table, files: &[DataFile]) -> Result<(), IoError> {
    let Some(first) = files.first() else { return Ok(()) };
    let first_schema = file_schema(&first.path)?;
    for f in &files[1..] {
        if let Some(detail) = schema_difference(&first_schema, &file_schema(&f.path)?) {
            return Err(IoError::ForeignFile { table, path: f.path.clone(), first: first.path.clone(), detail });
        }
    }
    Ok(())
}

/// Decode every page of every file of the dataset in `dir`, and name the first file
/// that cannot be decoded: for explaining a decoder error met mid-run, which Polars
/// reports without the file.
pub fn find_unreadable_file(dir: &Path) -> Option<IoError> {
    for table in Table::ALL {
        let Ok(Some(location)) = locate_table(dir, table) else { continue };
        let Ok(files) = list_files(&location) else { continue };
        for f in files {
            let decoded = decode_guarded(&f.path, || {
                LazyFrame::scan_parquet(path_ref(&f.path), ScanArgsParquet::default())
                    .and_then(|lf| lf.null_count().collect_with_engine(Engine::Streaming))
            });
            if let Err(e) = decoded {
                return Some(e);
            }
        }
    }
    None
}

/// A lazy scan of `files`, with hive partition values added as text columns, and
/// optionally the source file of each row.
pub fn scan_files(files: &[DataFile], with_file_column: bool) -> Result<LazyFrame, IoError> {
    scan_partitioned(files, with_file_column, |_, value| lit(value.to_string()), Ok)
}

/// A partition value as a literal of its column's type in `table`'s contract: a
/// `bill_month=2024-01-01` folder becomes a Date constant, so no row parses text.
/// A value that does not read as that type stays text, for validation to report.
fn partition_literal(table: Table, key: &str, value: &str) -> Expr {
    let text = || lit(value.to_string());
    match table.spec().column(key).map(|c| c.kind) {
        Some(Kind::Date) => chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").map_or_else(|_| text(), lit),
        Some(Kind::Int) => value.parse::<i64>().map_or_else(|_| text(), lit),
        _ => text(),
    }
}

/// A scan of `files` with the hive partition values added as columns (`literal`
/// makes their expression), passed through `counted`.
fn scan_partitioned(
    files: &[DataFile],
    with_file_column: bool,
    literal: impl Fn(&str, &str) -> Expr,
    counted: impl Fn(LazyFrame) -> Result<LazyFrame, IoError>,
) -> Result<LazyFrame, IoError> {
    // One scan per partition; partitions with the same keys are concatenated.
    let mut groups: BTreeMap<Vec<(String, String)>, Vec<PlRefPath>> = BTreeMap::new();
    for f in files {
        groups.entry(f.partitions.clone()).or_default().push(read_ref(&f.path));
    }
    let mut frames = Vec::new();
    for (parts, paths) in groups {
        let args = ScanArgsParquet {
            hive_options: HiveOptions::new_disabled(),
            include_file_paths: with_file_column.then(|| col::SOURCE_FILE.into()),
            ..Default::default()
        };
        let first = scanned_path(paths[0].as_ref()).to_string();
        let mut lf = LazyFrame::scan_parquet_files(paths.into_iter().collect(), args)
            .map_err(|e| IoError::Polars { context: format!("scanning {first}"), source: e })?;
        if !parts.is_empty() {
            let schema = lf
                .collect_schema()
                .map_err(|e| IoError::Polars { context: format!("reading the schema of {first}"), source: e })?;
            let added: Vec<Expr> = parts
                .iter()
                .filter(|(k, _)| schema.get(k.as_str()).is_none())
                .map(|(k, v)| literal(k, v).alias(k.as_str()))
                .collect();
            lf = lf.with_columns(added);
        }
        frames.push(lf);
    }
    if frames.len() == 1 {
        return counted(frames.pop().expect("one frame"));
    }
    let args = UnionArgs { to_supertypes: true, diagonal: true, rechunk: false, parallel: true, ..Default::default() };
    counted(concat(frames, args).map_err(|e| IoError::Polars { context: "combining partitions".into(), source: e })?)
}

/// A reference table (a few rows that every stage joins) read once into memory; the
/// scan as it is if it cannot be read, for validation to report the file and rule.
fn in_memory(lf: LazyFrame) -> LazyFrame {
    lf.clone().collect().map_or(lf, DataFrame::lazy)
}

/// The rows of `table` in the dataset in `dir` as its files' footers count them (none
/// when the table is absent): known before anything is decoded.
pub fn footer_rows(dir: &Path, table: Table) -> Result<u64, IoError> {
    let Some(location) = locate_table(dir, table)? else { return Ok(0) };
    let mut rows = 0;
    for f in list_files(&location)? {
        check_parquet(&f.path)?;
        let file = File::open(&f.path).map_err(|e| IoError::Io { path: f.path.clone(), source: e })?;
        rows += ParquetReader::new(file).num_rows().map_err(|e| unreadable(&f.path, &e))? as u64;
    }
    Ok(rows)
}

/// Find, check and lazily scan every table of the dataset in `dir`.
pub fn open_dataset(dir: &Path) -> Result<RawDataset, IoError> {
    if !dir.is_dir() {
        return Err(IoError::NoDataset { path: dir.to_path_buf() });
    }
    let mut raw = RawDataset::default();
    for table in Table::ALL {
        let Some(location) = locate_table(dir, table)? else {
            if table.required() {
                return Err(IoError::MissingTable { table, dir: dir.to_path_buf() });
            }
            continue;
        };
        let files = list_files(&location)?;
        if files.is_empty() {
            return Err(IoError::NoFiles { table, path: location });
        }
        let keys = |f: &DataFile| f.partitions.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        if let Some(odd) = files.iter().find(|f| keys(f) != keys(&files[0])) {
            return Err(IoError::MixedPartitions { table, first: files[0].path.clone(), other: odd.path.clone() });
        }
        for f in &files {
            check_parquet(&f.path)?;
        }
        check_same_schema(table, &files)?;
        let literal = |key: &str, value: &str| partition_literal(table, key, value);
        let columns = file_schema(&files[0].path)?;
        let counted = |lf| Ok(raw.reads.counted(table, Source::Input, &columns, lf));
        let mut lf = scan_partitioned(&files, false, literal, counted)?;
        let schema = lf.collect_schema().map_err(|e| IoError::Polars {
            context: format!("reading the schema of {}", location.display()),
            source: e,
        })?;
        let lf_with_files = scan_partitioned(&files, true, literal, counted)?;
        if customer_column(table).is_none() {
            lf = in_memory(lf);
        }
        raw.tables.insert(
            table,
            RawTable {
                lf,
                lf_with_files,
                schema: schema.as_ref().clone(),
                location: location.display().to_string(),
                files: files.len(),
            },
        );
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_of_partition_values() {
        assert_eq!(percent_decode("2024-01-01%2000%3A00%3A00"), "2024-01-01 00:00:00");
        assert_eq!(percent_decode("a%zz"), "a%zz");
        assert_eq!(percent_decode("50%"), "50%");
    }

    #[test]
    fn input_files_are_read_by_address_where_the_path_allows_and_named_by_path() {
        let tmp = tempfile::tempdir().unwrap();
        let mut df = df!("customer_id" => [1i64, 2, 3]).unwrap();
        for folder in ["plain", "with space", "100%"] {
            let path = tmp.path().join(folder).join("t.parquet");
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            ParquetWriter::new(std::fs::File::create(&path).unwrap()).finish(&mut df).unwrap();
            let by = read_ref(&path).to_string();
            assert_eq!(by.starts_with("file://"), folder == "plain", "{by}");
            assert_eq!(scanned_path(&by), path.to_str().unwrap());
            let file = DataFile { path: path.clone(), partitions: Vec::new() };
            let read = scan_files(&[file], true).unwrap().collect().unwrap();
            assert_eq!(read.column("customer_id").unwrap().i64().unwrap().sum(), Some(6), "{folder}");
        }
    }
}
