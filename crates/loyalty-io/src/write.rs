//! Writing outputs (Parquet, CSV and JSON files) and the run's own scratch files
//! ([`ScratchWriter`]); whole folders and single files that appear whole or not at
//! all are in [`crate::output`]. Outputs are written with their label columns as
//! text (`loyalty_contract::labels`), whatever the run held in memory.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use loyalty_contract::labels::as_text;
use polars::prelude::*;
use serde::Serialize;

use crate::error::IoError;

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> IoError + '_ {
    move |source| IoError::Io { path: path.to_path_buf(), source }
}

fn pl_err(path: &Path) -> impl Fn(PolarsError) -> IoError + '_ {
    move |source| IoError::Polars { context: format!("writing {}", path.display()), source }
}

fn create(path: &Path) -> Result<File, IoError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    File::create(path).map_err(io_err(path))
}

/// Write a frame as a Snappy-compressed Parquet file, through the streaming
/// engine's Parquet sink (it encodes columns and row groups in parallel: 40% faster
/// than `ParquetWriter` on a 3.5M x 46 feature table).
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<(), IoError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let options = ParquetWriteOptions {
        compression: ParquetCompression::Snappy,
        statistics: StatisticsOptions::default(),
        row_group_size: None,
        data_page_size: None,
        key_value_metadata: None,
        arrow_schema: None,
        compat_level: None,
    };
    let target = SinkTarget::Path(PlRefPath::new(path.to_string_lossy().as_ref()));
    as_text(df.clone())
        .map_err(pl_err(path))?
        .lazy()
        .sink(SinkDestination::File { target }, FileWriteFormat::Parquet(Arc::new(options)), UnifiedSinkArgs::default())
        .and_then(|lf| lf.collect_with_engine(Engine::Streaming))
        .map_err(pl_err(path))?;
    Ok(())
}

/// Write a table as one file whole or not at all: CSV when `path` ends in `.csv`,
/// else Parquet, into a sibling temporary that is fsynced and renamed over `path`.
pub fn write_table_atomic(df: &mut DataFrame, path: &Path) -> Result<(), IoError> {
    let csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    crate::output::write_file_atomic(path, |tmp| if csv { write_csv(df, tmp) } else { write_parquet(df, tmp) })
}

/// Run a lazy plan on the streaming engine straight into a Parquet file.
pub fn sink_parquet(lf: LazyFrame, path: &Path) -> Result<(), IoError> {
    // Collected in streaming batches; the frames written here are result tables and
    // rejects, not the raw billing history.
    let mut df = loyalty_contract::collect_streaming(lf).map_err(pl_err(path))?;
    write_parquet(&mut df, path)
}

/// Write a frame as CSV with a header.
pub fn write_csv(df: &mut DataFrame, path: &Path) -> Result<(), IoError> {
    let file = create(path)?;
    let mut df = as_text(df.clone()).map_err(pl_err(path))?;
    CsvWriter::new(BufWriter::new(file)).include_header(true).finish(&mut df).map_err(pl_err(path))?;
    Ok(())
}

/// The `columns` of a Parquet file, whole (a previous run's customers table): a missing
/// file or column is an error naming it.
pub fn read_parquet_columns(path: &Path, columns: &[&str]) -> Result<DataFrame, IoError> {
    let unreadable =
        |rule: &'static str, detail: String| IoError::Unreadable { path: path.to_path_buf(), rule, detail };
    if !path.is_file() {
        return Err(unreadable("missing_file", "no such file".into()));
    }
    let lf = LazyFrame::scan_parquet(PlRefPath::new(path.to_string_lossy().as_ref()), ScanArgsParquet::default())
        .map_err(|e| unreadable("not_parquet", e.to_string()))?;
    let schema = lf.clone().collect_schema().map_err(|e| unreadable("not_parquet", e.to_string()))?;
    if let Some(missing) = columns.iter().find(|c| schema.get(c).is_none()) {
        return Err(unreadable("missing_column", format!("it has no column `{missing}`")));
    }
    lf.select(columns.iter().map(|c| col(*c)).collect::<Vec<_>>())
        .collect()
        .map_err(|e| unreadable("not_parquet", e.to_string()))
}

/// Read a small text file (a configuration).
pub fn read_text(path: &Path) -> Result<String, IoError> {
    std::fs::read_to_string(path).map_err(io_err(path))
}

/// Write a text file (the HTML report).
pub fn write_text(text: &str, path: &Path) -> Result<(), IoError> {
    let mut w = BufWriter::new(create(path)?);
    w.write_all(text.as_bytes()).map_err(io_err(path))?;
    w.flush().map_err(io_err(path))
}

/// Write a value as pretty JSON.
pub fn write_json<T: Serialize>(value: &T, path: &Path) -> Result<(), IoError> {
    let mut w = BufWriter::new(create(path)?);
    serde_json::to_writer_pretty(&mut w, value).map_err(|source| IoError::Json { path: path.to_path_buf(), source })?;
    w.write_all(b"\n").map_err(io_err(path))?;
    w.flush().map_err(io_err(path))
}

/// Appends frames to one Parquet file, a row group per call; the file is created with
/// the first frame's schema (nothing appended: no file).
pub struct AppendWriter {
    path: PathBuf,
    writer: Option<polars::io::parquet::write::BatchedWriter<BufWriter<File>>>,
}

impl AppendWriter {
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), writer: None }
    }

    pub fn append(&mut self, df: &DataFrame) -> Result<(), IoError> {
        let df = &as_text(df.clone()).map_err(pl_err(&self.path))?;
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => self.writer.insert(
                ParquetWriter::new(BufWriter::new(create(&self.path)?))
                    .with_compression(ParquetCompression::Snappy)
                    .batched(df.schema())
                    .map_err(pl_err(&self.path))?,
            ),
        };
        // The writer walks the frame's chunks as record batches: a frame put together
        // from slices of different tables needs its columns' chunks aligned first.
        if df.should_rechunk() {
            let mut aligned = df.clone();
            aligned.align_chunks_par();
            return writer.write_batch(&aligned).map_err(pl_err(&self.path));
        }
        writer.write_batch(df).map_err(pl_err(&self.path))
    }

    pub fn finish(self) -> Result<(), IoError> {
        if let Some(writer) = self.writer {
            writer.finish().map_err(pl_err(&self.path))?;
        }
        Ok(())
    }
}

/// A Parquet file of this run's own, read back by it: a row group per frame
/// appended, LZ4 (it halves the files, 3.9 GB of bills at 3M customers uncompressed,
/// 1.8 GB with it, and was as fast), every number plain encoded without asking:
/// polars' writer estimates each column's cardinality and builds a dictionary for the
/// small integers (together 5-6% of the validate stage's samples at 10M customers,
/// perf, and the floats' dictionary is never used), while LZ4 shrinks the repeated
/// values of a plain column as well. Column statistics only when asked for, and then
/// on the dates and timestamps only: the filters that skip row groups by them are
/// filters by date (the other columns' minimum and maximum were 3% of the samples).
pub struct ScratchWriter {
    writer: polars_parquet::write::FileWriter<BufWriter<File>>,
    columns: Vec<ScratchColumn>,
}

/// How [`ScratchWriter`] writes one column.
struct ScratchColumn {
    encodings: Vec<polars_parquet::write::Encoding>,
    field: polars_parquet::parquet::schema::types::ParquetType,
    options: polars_parquet::write::WriteOptions,
}

impl ScratchColumn {
    /// The column's pages, encoded and compressed (one list per Parquet leaf column).
    fn compressed_pages(
        &self,
        array: Box<dyn polars_arrow::array::Array>,
    ) -> PolarsResult<Vec<Vec<polars_parquet::write::CompressedPage>>> {
        use polars_parquet::read::ParquetError;
        use polars_parquet::write::{Compressor, array_to_columns};
        array_to_columns(array, self.field.clone(), self.options, &self.encodings)?
            .into_iter()
            .map(|encoded| {
                let encoded = encoded.map(|page| page.map_err(|e| ParquetError::FeatureNotSupported(e.to_string())));
                Compressor::new_from_vec(encoded, self.options.compression, vec![])
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(PolarsError::from)
            })
            .collect()
    }
}

impl ScratchWriter {
    pub fn create(path: &Path, schema: &Schema, statistics: bool) -> PolarsResult<ScratchWriter> {
        use polars_parquet::write::{
            CompressionOptions, Encoding, FileWriter, StatisticsOptions, Version, WriteOptions, get_dtype_encoding,
            to_parquet_schema,
        };
        let schema = schema.to_arrow(CompatLevel::newest());
        let parquet_schema = to_parquet_schema(&schema)?;
        let columns = schema
            .iter_values()
            .zip(parquet_schema.fields())
            .map(|(field, parquet_field)| {
                let dtype = field.dtype();
                let dated = matches!(dtype, ArrowDataType::Date32 | ArrowDataType::Timestamp(..));
                let encodings = match dtype.is_numeric() || dated {
                    true => vec![Encoding::Plain],
                    false => get_dtype_encoding(dtype),
                };
                let options = WriteOptions {
                    statistics: match statistics && dated {
                        true => StatisticsOptions::default(),
                        false => StatisticsOptions::empty(),
                    },
                    compression: CompressionOptions::Lz4Raw,
                    version: Version::V1,
                    data_page_size: None,
                };
                ScratchColumn { encodings, field: parquet_field.clone(), options }
            })
            .collect();
        let file = File::create(path).map_err(|e| polars_err!(ComputeError: "creating {}: {e}", path.display()))?;
        // The file's own options: no page indexes (polars skips row groups by the
        // columns' statistics above, never pages).
        let options = WriteOptions {
            statistics: StatisticsOptions::empty(),
            compression: CompressionOptions::Lz4Raw,
            version: Version::V1,
            data_page_size: None,
        };
        let writer = FileWriter::new_with_parquet_schema(BufWriter::new(file), schema, parquet_schema, options);
        Ok(ScratchWriter { writer, columns })
    }

    /// `df` as one row group (its columns rechunked first), each column with its own
    /// encoding and statistics. The columns are encoded and compressed side by side,
    /// then written in order: one after the other (as the writer pulls them) they kept
    /// a run's spills on one core.
    pub fn append(&mut self, df: &mut DataFrame) -> PolarsResult<()> {
        use polars_parquet::write::{DynIter, DynStreamingIterator, fallible_streaming_iterator};
        use rayon::prelude::*;
        df.rechunk_mut();
        for batch in df.iter_chunks(CompatLevel::newest(), false) {
            let rows = batch.len();
            if rows == 0 {
                continue;
            }
            let per_column = batch
                .into_arrays()
                .into_par_iter()
                .zip(&self.columns)
                .map(|(array, c)| c.compressed_pages(array))
                .collect::<PolarsResult<Vec<_>>>()?;
            let pages = per_column.iter().flatten().map(|pages| {
                Ok(DynStreamingIterator::new(fallible_streaming_iterator::convert(pages.iter().map(PolarsResult::Ok))))
            });
            self.writer.write(rows as u64, DynIter::new(pages))?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> PolarsResult<()> {
        self.writer.end(None)?;
        Ok(())
    }
}
