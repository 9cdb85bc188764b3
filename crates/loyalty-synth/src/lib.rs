//! `loyalty gen`: a seeded generator of telecom datasets that follow the contract.
//!
//! Customers are simulated month by month in chunks; each chunk draws from its own
//! ChaCha stream (seed, chunk number), so the output does not depend on the number
//! of threads. Chunks run in parallel on rayon in waves; the frames of a wave are
//! handed to a [`Sink`] in chunk order, so files come out byte-identical run to run.
//! Pure: the sink, implemented by the caller, does the writing.

mod chunk;
pub mod future;
pub mod world;

use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

pub use chunk::{ChunkFrames, ID_BASE};
pub use world::{GenParams, World, add_months};

/// Where generated frames go.
pub trait Sink: Sync {
    /// One chunk's rows of a partitioned table (billing). Called from several
    /// threads at once, for distinct `part`s.
    fn write_part(&self, table: &str, part: usize, df: DataFrame) -> Result<(), SinkError>;
    /// Rows of a single-file table, called in chunk order from one thread.
    fn append(&mut self, table: &str, df: DataFrame) -> Result<(), SinkError>;
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Polars(#[from] PolarsError),
    #[error("{0}")]
    Write(String),
}

/// One cell of the true satisfaction-retention curve.
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    pub competition_level: &'static str,
    pub overall: u8,
    /// Surveys old enough for the horizon to have passed inside the data.
    pub surveys: u64,
    /// Mean true P(still a customer `horizon_months` after the survey).
    pub p_retained: f64,
}

/// Everything the generator knows and the data only hints at.
#[derive(Debug, Clone, Serialize)]
pub struct GroundTruth {
    pub world: World,
    pub satisfaction_retention_curve: Vec<CurvePoint>,
    pub rows: Vec<(String, usize)>,
}

/// Tables that go into the dataset in chunk order (billing is written per part).
pub const APPENDED: [&str; 9] = [
    "customers",
    "services",
    "topups",
    "interactions",
    "surveys",
    "referrals",
    "truth/customers",
    "truth/adoption",
    "truth/surveys",
];

/// Generate the dataset described by `params` into `sink`.
pub fn generate(
    params: GenParams,
    sink: &mut dyn Sink,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<GroundTruth, SinkError> {
    let world = World::new(params.clone());
    let chunk_size = params.chunk_size.max(1);
    let n_chunks = params.customers.div_ceil(chunk_size);
    let wave = rayon::current_num_threads().max(1) * 2;
    let mut curve = [[(0u64, 0.0f64); 5]; 3];
    let mut rows: Vec<(String, usize)> = Vec::new();
    let mut count = |name: &str, n: usize| match rows.iter_mut().find(|(t, _)| t == name) {
        Some(r) => r.1 += n,
        None => rows.push((name.to_string(), n)),
    };
    for wave_start in (0..n_chunks).step_by(wave) {
        let ids: Vec<usize> = (wave_start..(wave_start + wave).min(n_chunks)).collect();
        let sink_ref: &dyn Sink = sink;
        let outs: Vec<Result<(ChunkFrames, usize), SinkError>> = ids
            .par_iter()
            .map(|&c| {
                let first = c * chunk_size;
                let count = chunk_size.min(params.customers - first);
                let mut frames = chunk::simulate(&world, c, first, count)?;
                let billing = std::mem::take(&mut frames.billing);
                let billing_rows = billing.height();
                sink_ref.write_part("billing", c, billing)?;
                progress(count);
                Ok((frames, billing_rows))
            })
            .collect();
        for out in outs {
            let (f, billing_rows) = out?;
            count("billing", billing_rows);
            for (i, cell) in f.curve.iter().enumerate() {
                for (s, (n, p)) in cell.iter().enumerate() {
                    curve[i][s].0 += n;
                    curve[i][s].1 += p;
                }
            }
            for (name, df) in [
                ("customers", f.customers),
                ("services", f.services),
                ("topups", f.topups),
                ("interactions", f.interactions),
                ("surveys", f.surveys),
                ("referrals", f.referrals),
                ("truth/customers", f.truth_customers),
                ("truth/adoption", f.truth_adoption),
                ("truth/surveys", f.truth_surveys),
            ] {
                count(name, df.height());
                sink.append(name, df)?;
            }
        }
    }
    let levels = ["low", "medium", "high"];
    let satisfaction_retention_curve = (0..3)
        .flat_map(|i| (0..5).map(move |s| (i, s)))
        .map(|(i, s)| {
            let (n, sum) = curve[i][s];
            CurvePoint {
                competition_level: levels[i],
                overall: s as u8 + 1,
                surveys: n,
                p_retained: if n > 0 { sum / n as f64 } else { f64::NAN },
            }
        })
        .collect();
    Ok(GroundTruth { world, satisfaction_retention_curve, rows })
}

impl World {
    /// The markets table of this world.
    pub fn markets_frame(&self) -> PolarsResult<DataFrame> {
        use loyalty_contract::col as k;
        let m = &self.markets;
        df!(
            k::MARKET_ID => m.iter().map(|x| x.market_id.clone()).collect::<Vec<_>>(),
            k::COMPETITORS => m.iter().map(|x| x.competitors).collect::<Vec<_>>(),
            k::COMPETITION_INDEX => m.iter().map(|x| x.competition_index).collect::<Vec<_>>(),
        )
    }

    /// The service catalog of this world.
    pub fn catalog_frame(&self) -> PolarsResult<DataFrame> {
        use loyalty_contract::col as k;
        let c = &self.catalog;
        df!(
            k::SERVICE => c.iter().map(|x| x.service).collect::<Vec<_>>(),
            k::MONTHLY_PRICE => c.iter().map(|x| x.monthly_price).collect::<Vec<_>>(),
            k::MONTHLY_MARGIN => c.iter().map(|x| x.monthly_margin).collect::<Vec<_>>(),
        )
    }
}

/// A generated dataset held in memory: every table (and `truth/...` frame) by name.
pub struct Generated {
    pub frames: std::collections::BTreeMap<String, DataFrame>,
    pub truth: GroundTruth,
}

#[derive(Default)]
struct MemSink {
    parts: std::sync::Mutex<Vec<(usize, DataFrame)>>,
    frames: std::collections::BTreeMap<String, Vec<DataFrame>>,
}

impl Sink for MemSink {
    fn write_part(&self, _table: &str, part: usize, df: DataFrame) -> Result<(), SinkError> {
        self.parts.lock().map_err(|_| SinkError::Write("poisoned lock".into()))?.push((part, df));
        Ok(())
    }

    fn append(&mut self, table: &str, df: DataFrame) -> Result<(), SinkError> {
        self.frames.entry(table.to_string()).or_default().push(df);
        Ok(())
    }
}

fn vstack(frames: Vec<DataFrame>) -> PolarsResult<DataFrame> {
    let mut it = frames.into_iter();
    let mut out = it.next().unwrap_or_default();
    for df in it {
        out.vstack_mut(&df)?;
    }
    Ok(out)
}

/// Generate into memory (for tests and small experiments).
pub fn generate_in_memory(params: GenParams) -> Result<Generated, SinkError> {
    let mut sink = MemSink::default();
    let truth = generate(params, &mut sink, &|_| {})?;
    let mut parts = sink.parts.into_inner().map_err(|_| SinkError::Write("poisoned lock".into()))?;
    parts.sort_by_key(|(p, _)| *p);
    let mut frames = std::collections::BTreeMap::new();
    frames.insert("billing".to_string(), vstack(parts.into_iter().map(|(_, df)| df).collect())?);
    for (name, dfs) in sink.frames {
        frames.insert(name, vstack(dfs)?);
    }
    frames.insert("markets".to_string(), truth.world.markets_frame()?);
    frames.insert("service_catalog".to_string(), truth.world.catalog_frame()?);
    Ok(Generated { frames, truth })
}
