//! Errors of the contract layer: whose fault it is, and where.

use std::fmt;

use polars::prelude::PolarsError;
use serde::Serialize;

use crate::spec::Table;

/// A table- or column-level break of the contract: no row can fix it, so it is
/// fatal even in lenient mode.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaProblem {
    pub table: Table,
    /// The file or folder the table was read from.
    pub location: String,
    pub column: String,
    pub rule: String,
    pub detail: String,
}

impl fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: table `{}`, column `{}`, rule `{}`: {}",
            self.location, self.table, self.column, self.rule, self.detail
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The input breaks the contract at table or column level.
    #[error("input does not follow the contract:\n{}", join_lines(.0))]
    Schema(Vec<SchemaProblem>),
    /// Polars failed while evaluating a check (an I/O error while scanning, or a bug).
    #[error("while validating table `{table}`: {source}")]
    Polars {
        table: Table,
        #[source]
        source: PolarsError,
    },
}

fn join_lines(problems: &[SchemaProblem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}
