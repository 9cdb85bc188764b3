//! Importers: public text datasets converted into the contract. They never panic: a
//! malformed line is an error naming the file, the line, the field and the value.

pub mod cdnow;
pub mod mlc_churn;
pub mod wa_churn;

use std::path::{Path, PathBuf};

use polars::prelude::*;

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

/// One data line of a CSV file with a fixed header: fields by column name, parsers
/// whose errors name the file, line, column and value.
pub(crate) struct Row<'a> {
    path: &'a Path,
    line: usize,
    header: &'a [&'a str],
    fields: Vec<&'a str>,
}

impl Row<'_> {
    /// The field of column `name` ("" for a name not in the header).
    pub(crate) fn get(&self, name: &str) -> &str {
        self.header.iter().position(|h| *h == name).map_or("", |i| self.fields[i])
    }

    pub(crate) fn err(&self, field: &str, value: &str, reason: &str) -> ImportError {
        ImportError {
            path: self.path.to_path_buf(),
            line: self.line,
            field: field.into(),
            value: value.chars().take(40).collect(),
            reason: reason.into(),
        }
    }

    /// A whole number in 0..=max.
    pub(crate) fn whole<T: std::str::FromStr + PartialOrd + Default>(
        &self,
        name: &str,
        max: T,
        what: &str,
    ) -> Result<T, ImportError> {
        let v = self.get(name);
        v.parse::<T>().ok().filter(|x| *x >= T::default() && *x <= max).ok_or_else(|| self.err(name, v, what))
    }

    /// A finite number >= 0.
    pub(crate) fn amount(&self, name: &str) -> Result<f64, ImportError> {
        self.get(name)
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| self.err(name, self.get(name), "not a finite number >= 0"))
    }

    /// One of `yes` (true) or `no` (false).
    pub(crate) fn flag(&self, name: &str, yes: &[&str], no: &[&str]) -> Result<bool, ImportError> {
        let v = self.get(name);
        if yes.contains(&v) {
            Ok(true)
        } else if no.contains(&v) {
            Ok(false)
        } else {
            Err(self.err(
                name,
                v,
                &format!("expected one of {}", yes.iter().chain(no).copied().collect::<Vec<_>>().join(", ")),
            ))
        }
    }
}

/// The rows of a comma-separated file whose first line is exactly `header`, each
/// turned into a `T` by `row`; blank lines are skipped, an empty file is an error.
pub(crate) fn parse_csv<T>(
    bytes: &[u8],
    path: &Path,
    header: &[&str],
    mut row: impl FnMut(&Row) -> Result<T, ImportError>,
) -> Result<Vec<T>, ImportError> {
    let mut out = Vec::new();
    let mut header_seen = false;
    for item in lines(bytes, path) {
        let (line, text) = item?;
        if text.trim().is_empty() {
            continue;
        }
        let r = Row { path, line, header, fields: text.split(',').map(str::trim).collect() };
        if !header_seen {
            if r.fields != header {
                return Err(r.err("header", text.trim(), &format!("expected the columns {}", header.join(","))));
            }
            header_seen = true;
            continue;
        }
        if r.fields.len() != header.len() {
            return Err(r.err(
                "line",
                text.trim(),
                &format!("expected {} fields, found {}", header.len(), r.fields.len()),
            ));
        }
        out.push(row(&r)?);
    }
    if out.is_empty() {
        return Err(ImportError {
            path: path.to_path_buf(),
            line: 1,
            field: "file".into(),
            value: String::new(),
            reason: "no data lines".into(),
        });
    }
    Ok(out)
}

pub(crate) use loyalty_contract::epoch_days as days;

pub(crate) fn date_column(name: &str, v: Vec<Option<i32>>) -> PolarsResult<Column> {
    Ok(Int32Chunked::from_iter_options(name.into(), v.into_iter()).into_series().cast(&DataType::Date)?.into())
}

/// A contract billing table from what an importer knows: customer, bill month (days),
/// total charge and, if known, voice minutes; every other billing column null.
pub(crate) fn billing_frame(
    ids: Vec<i64>,
    months: Vec<i32>,
    charge: Vec<f64>,
    voice: Option<Vec<f64>>,
) -> PolarsResult<DataFrame> {
    use loyalty_contract::col as c;
    let m = ids.len();
    DataFrame::new_infer_height(vec![
        Column::new(c::CUSTOMER_ID.into(), ids),
        date_column(c::BILL_MONTH, months.into_iter().map(Some).collect())?,
        Column::new(c::TOTAL_CHARGE.into(), charge),
        Column::full_null(c::COST.into(), m, &DataType::Float64),
        match voice {
            Some(v) => Column::new(c::VOICE_MINUTES.into(), v),
            None => Column::full_null(c::VOICE_MINUTES.into(), m, &DataType::Float64),
        },
        Column::full_null(c::DATA_MB.into(), m, &DataType::Float64),
        Column::full_null(c::SMS_COUNT.into(), m, &DataType::Int64),
        Column::full_null(c::DISCOUNT.into(), m, &DataType::Float64),
        Column::full_null(c::AMOUNT_PAID.into(), m, &DataType::Float64),
        Column::full_null(c::DAYS_LATE.into(), m, &DataType::Int64),
    ])
}

/// Property tests over arbitrary bytes: the importers return Ok or an error that names
/// a line of the input, never panic. `make fuzz` runs them with many more cases
/// (`LOYALTY_FUZZ_CASES`); a crash found there becomes a case in `REGRESSIONS`.
#[cfg(test)]
mod fuzz {
    use std::path::Path;

    /// Inputs that once broke an importer (none so far), kept forever.
    const REGRESSIONS: &[&[u8]] = &[b"", b"\n\n\n", b"\xff", b" customer_id\n", b"rownames\n"];

    fn seeds() -> Vec<Vec<u8>> {
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from);
        let root = manifest.join("../../data/external");
        let head = |name: &str, n: usize| -> Vec<u8> {
            let text = std::fs::read_to_string(root.join(name)).unwrap_or_default();
            text.lines().take(n).collect::<Vec<_>>().join("\n").into_bytes()
        };
        vec![
            head("CDNOW_master.txt", 30),
            head("CDNOW_sample.txt", 30),
            head("wa_churn.csv", 30),
            head("mlc_churn.csv", 30),
        ]
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// A random edit: flip, insert, delete, duplicate a span, or splice digits/separators.
    fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
        const INTERESTING: &[&[u8]] = &[
            b",",
            b" ",
            b"\n",
            b"\r",
            b"-",
            b".",
            b"NaN",
            b"inf",
            b"1e309",
            b"99999999999999999999",
            b"\xc3",
            b"\"",
            b"Yes",
            b"0",
        ];
        let len = input.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next() as u8);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below(len - i + 1);
                input.drain(i..i + n);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below((len - i).min(64) + 1);
                let span: Vec<u8> = input[i..i + n].to_vec();
                let j = rng.below(len + 1);
                input.splice(j..j, span);
            }
            _ => {
                let i = rng.below(len + 1);
                let pick = INTERESTING[rng.below(INTERESTING.len())];
                input.splice(i..i, pick.iter().copied());
            }
        }
    }

    fn check(bytes: &[u8]) {
        let path = Path::new("fuzz.txt");
        let lines = bytes.split(|b| *b == b'\n').count();
        if let Err(e) = super::cdnow::parse(bytes, path) {
            assert!(e.line >= 1 && e.line <= lines.max(1), "{e}");
        }
        if let Err(e) = super::wa_churn::parse(bytes, path) {
            assert!(e.line >= 1 && e.line <= lines.max(1), "{e}");
        }
        if let Err(e) = super::mlc_churn::parse(bytes, path) {
            assert!(e.line >= 1 && e.line <= lines.max(1), "{e}");
        }
    }

    #[test]
    fn importers_never_panic_on_mutated_input() {
        let cases: usize = std::env::var("LOYALTY_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000);
        for r in REGRESSIONS {
            check(r);
        }
        let seeds = seeds();
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for case in 0..cases {
            let mut input = seeds[case % seeds.len()].clone();
            for _ in 0..1 + rng.below(8) {
                mutate(&mut rng, &mut input);
            }
            check(&input);
        }
        // and pure noise
        for _ in 0..cases / 10 {
            let n = rng.below(300);
            let noise: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            check(&noise);
        }
    }
}
