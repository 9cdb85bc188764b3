//! Keyed pseudonyms for customer ids in the outputs.

use loyalty_contract::col as c;
use polars::prelude::*;

use crate::PipelineError;

/// The environment variable holding the pseudonymisation key.
pub const PSEUDONYM_KEY_VAR: &str = "LOYALTY_PSEUDONYM_KEY";

/// Keyed hashing of customer ids: `c` + 16 hex digits of BLAKE3 keyed with a key
/// derived from the secret. The same id and secret always give the same pseudonym, so
/// outputs of different runs still join; without the secret the ids cannot be recovered
/// or checked by guessing.
pub struct Pseudonymizer {
    key: [u8; 32],
}

impl Pseudonymizer {
    /// The key from [`PSEUDONYM_KEY_VAR`]; the run refuses to start without it.
    pub fn from_env() -> Result<Self, PipelineError> {
        let secret = std::env::var(PSEUDONYM_KEY_VAR).map_err(|_| {
            PipelineError::Usage(format!(
                "--pseudonymize-ids needs a secret key in the environment variable {PSEUDONYM_KEY_VAR}"
            ))
        })?;
        Self::from_secret(&secret)
    }

    pub fn from_secret(secret: &str) -> Result<Self, PipelineError> {
        if secret.len() < 16 {
            return Err(PipelineError::Usage(format!(
                "{PSEUDONYM_KEY_VAR} is too short: use at least 16 characters of secret"
            )));
        }
        Ok(Self { key: blake3::derive_key("loyalty 2026 customer id pseudonyms", secret.as_bytes()) })
    }

    pub fn pseudonym(&self, id: &str) -> String {
        let h = blake3::keyed_hash(&self.key, id.as_bytes());
        format!("c{}", &h.to_hex()[..16])
    }

    /// Replace every id column (customer_id, referred_id) of `df` with its pseudonym.
    pub fn apply(&self, df: &mut DataFrame) -> PolarsResult<()> {
        for name in [c::CUSTOMER_ID, c::REFERRED_ID] {
            let Ok(column) = df.column(name) else { continue };
            let text = column.as_materialized_series().cast(&DataType::String)?;
            let hashed: Vec<Option<String>> = text.str()?.iter().map(|v| v.map(|id| self.pseudonym(id))).collect();
            df.with_column(Column::new(name.into(), hashed))?;
        }
        Ok(())
    }
}
