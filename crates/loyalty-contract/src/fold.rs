//! Folds of a streamed plan's batches into a state (a per-customer kernel, a
//! validation pass), each on a thread of its own.
//!
//! The streaming engine hands batches to `sink_batches` from its worker threads. A
//! fold under a lock made every other worker with a batch wait for it, and a waiting
//! worker decodes nothing: the billing pass of the features at 1M customers kept 1.55
//! of the 2 cores busy. Here the workers queue their batches and go on decoding, and
//! one thread folds them in turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{self, JoinHandle};

use polars::prelude::{DataFrame, LazyFrame, PlanCallback, PolarsResult, polars_err};

use crate::collect_streaming;

/// Batches that may wait for the fold: enough that a worker rarely waits behind a
/// slow batch, few enough to bound their memory (a batch is some 100k rows).
const QUEUED: usize = 4;

enum Message {
    Batch(DataFrame),
    Done,
}

/// A state folding the batches it is sent on its own thread, until [`FoldThread::finish`].
pub struct FoldThread<S> {
    to_fold: SyncSender<Message>,
    failed: Arc<AtomicBool>,
    folding: Option<JoinHandle<PolarsResult<S>>>,
}

impl<S: Send + 'static> FoldThread<S> {
    /// Start folding into `state` with `fold`, on a thread called `name`.
    pub fn start(
        name: &str,
        state: S,
        fold: impl FnMut(&mut S, DataFrame) -> PolarsResult<()> + Send + 'static,
    ) -> PolarsResult<Self> {
        let (to_fold, batches) = sync_channel(QUEUED);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let folding = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || fold_all(batches, state, fold, &flag))
            .map_err(|e| polars_err!(ComputeError: "starting the thread {name}: {e}"))?;
        Ok(FoldThread { to_fold, failed, folding: Some(folding) })
    }

    /// `lf` ending in a sink that sends each batch to this fold. Once the fold has
    /// failed the sink fails too, which stops the plan.
    pub fn sink(&self, lf: LazyFrame) -> PolarsResult<LazyFrame> {
        let (to_fold, failed) = (self.to_fold.clone(), self.failed.clone());
        lf.sink_batches(
            PlanCallback::new(move |df: DataFrame| {
                if failed.load(Ordering::Relaxed) {
                    return Err(polars_err!(ComputeError: "a batch fold failed"));
                }
                to_fold.send(Message::Batch(df)).map_err(|_| polars_err!(ComputeError: "a batch fold stopped"))?;
                Ok(false)
            }),
            false,
            None,
        )
    }

    /// The state once every batch sent has been folded, or the fold's first error.
    pub fn finish(mut self) -> PolarsResult<S> {
        let _ = self.to_fold.send(Message::Done);
        let folding =
            self.folding.take().ok_or_else(|| polars_err!(ComputeError: "a batch fold was finished twice"))?;
        folding.join().map_err(|_| polars_err!(ComputeError: "a batch fold panicked"))?
    }
}

impl<S> Drop for FoldThread<S> {
    /// A fold left unfinished (an error on the way) stops once it has what was sent.
    fn drop(&mut self) {
        if self.folding.is_some() {
            let _ = self.to_fold.send(Message::Done);
        }
    }
}

/// Fold every batch received until `Done` (or until every sender is gone). After an
/// error the batches are still taken, so that no sender waits on a full queue, but not
/// folded.
fn fold_all<S>(
    batches: Receiver<Message>,
    mut state: S,
    mut fold: impl FnMut(&mut S, DataFrame) -> PolarsResult<()>,
    failed: &AtomicBool,
) -> PolarsResult<S> {
    let mut outcome = Ok(());
    while let Ok(Message::Batch(df)) = batches.recv() {
        if outcome.is_ok() {
            outcome = fold(&mut state, df);
            if outcome.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
        }
    }
    outcome.map(|()| state)
}

/// Run `lf` on the streaming engine, folding each batch it produces into `state` with
/// `fold` on a thread of its own (one batch at a time, in the order they come); the
/// state at the end, or the first error of the plan or the fold. The kernels that keep
/// a compact record per customer are fed this way: the engine scans, filters and
/// decodes in parallel, and no frame of every row exists.
pub fn fold_batches<S: Send + 'static>(
    lf: LazyFrame,
    state: S,
    fold: impl FnMut(&mut S, DataFrame) -> PolarsResult<()> + Send + 'static,
) -> PolarsResult<S> {
    let folding = FoldThread::start("batch-fold", state, fold)?;
    let streamed = collect_streaming(folding.sink(lf)?);
    let folded = folding.finish();
    // The fold's error first: the plan's is then only that the fold stopped it.
    let state = folded?;
    streamed?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    fn numbers(n: i64) -> LazyFrame {
        df!("x" => (0..n).collect::<Vec<_>>()).unwrap().lazy()
    }

    #[test]
    fn every_batch_is_folded_once() {
        let sum = fold_batches(numbers(1_000_000), 0i64, |s, df| {
            *s += df.column("x")?.i64()?.sum().unwrap_or(0);
            Ok(())
        })
        .unwrap();
        assert_eq!(sum, 999_999 * 1_000_000 / 2);
    }

    #[test]
    fn a_fold_error_is_the_error_returned() {
        let got = fold_batches(numbers(1_000_000), (), |_, _| Err(polars_err!(ComputeError: "rule broken")));
        assert!(got.is_err_and(|e| e.to_string().contains("rule broken")));
    }

    #[test]
    fn a_fold_dropped_unfinished_lets_its_thread_end() {
        let folding = FoldThread::start("test-fold", 0usize, |n, df| {
            *n += df.height();
            Ok(())
        })
        .unwrap();
        collect_streaming(folding.sink(numbers(10)).unwrap()).unwrap();
        drop(folding);
    }

    #[test]
    fn two_folds_fed_by_one_execution() {
        let count = |name| {
            FoldThread::start(name, 0usize, |n, df| {
                *n += df.height();
                Ok(())
            })
            .unwrap()
        };
        let (a, b) = (count("fold-a"), count("fold-b"));
        let plans = vec![a.sink(numbers(300_000)).unwrap().logical_plan, b.sink(numbers(70)).unwrap().logical_plan];
        LazyFrame::collect_all_with_engine(plans, Engine::Streaming, OptFlags::default()).unwrap();
        assert_eq!((a.finish().unwrap(), b.finish().unwrap()), (300_000, 70));
    }
}
