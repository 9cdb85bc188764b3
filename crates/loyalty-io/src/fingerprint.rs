//! Fingerprints of the input files, for run.json: a later reader can tell whether the
//! data behind a report is the data they have.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::IoError;

/// One input file: its path under the dataset folder, its size and BLAKE3 hash.
#[derive(Debug, Clone, Serialize)]
pub struct InputFile {
    pub path: String,
    pub bytes: u64,
    pub blake3: String,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> IoError + '_ {
    move |source| IoError::Io { path: path.to_path_buf(), source }
}

fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), IoError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            parquet_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every Parquet file under `dir` (sorted), each streamed through BLAKE3; files are
/// hashed in parallel.
pub fn fingerprints(dir: &Path) -> Result<Vec<InputFile>, IoError> {
    let mut files = Vec::new();
    parquet_files(dir, &mut files)?;
    files.sort();
    files
        .par_iter()
        .map(|path| {
            let mut hasher = blake3::Hasher::new();
            let file = std::fs::File::open(path).map_err(io(path))?;
            hasher.update_reader(file).map_err(io(path))?;
            let bytes = std::fs::metadata(path).map_err(io(path))?.len();
            Ok(InputFile {
                path: path.strip_prefix(dir).unwrap_or(path).display().to_string(),
                bytes,
                blake3: hasher.finalize().to_hex().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_name_size_and_hash_every_parquet_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("billing")).unwrap();
        std::fs::write(dir.path().join("billing/part-0.parquet"), b"abc").unwrap();
        std::fs::write(dir.path().join("customers.parquet"), b"").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"not data").unwrap();
        let f = fingerprints(dir.path()).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].path, "billing/part-0.parquet");
        assert_eq!(f[0].bytes, 3);
        // BLAKE3("abc"), the reference test vector
        assert_eq!(f[0].blake3, "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
        assert_eq!(f[1].blake3, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
    }
}
