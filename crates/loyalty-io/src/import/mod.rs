//! Importers: public text datasets converted into the contract. They never panic: a
//! malformed line is an error naming the file, the line, the field and the value.

pub mod cdnow;
pub mod wa_churn;

use std::path::{Path, PathBuf};

/// A line of an input file that cannot be imported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}:{line}: field `{field}`: {reason} (got `{value}`)", path = .path.display())]
pub struct ImportError {
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    pub field: String,
    pub value: String,
    pub reason: String,
}

/// The lines of a file's bytes as text, 1-based, with a clear error for non-UTF-8.
pub(crate) fn lines<'a>(
    bytes: &'a [u8],
    path: &'a Path,
) -> impl Iterator<Item = Result<(usize, &'a str), ImportError>> + 'a {
    bytes.split(|b| *b == b'\n').enumerate().map(move |(i, raw)| {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        std::str::from_utf8(raw).map(|s| (i + 1, s)).map_err(|e| ImportError {
            path: path.to_path_buf(),
            line: i + 1,
            field: "line".into(),
            value: String::from_utf8_lossy(&raw[..raw.len().min(40)]).into_owned(),
            reason: format!("not UTF-8 text (byte {})", e.valid_up_to() + 1),
        })
    })
}
