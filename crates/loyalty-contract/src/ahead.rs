//! Work made one step ahead: the next piece prepared on a second thread while the
//! current one is used; and two independent steps run side by side.
//!
//! The passes that go a chunk or a customer partition at a time alternate a read (or a
//! partition's aggregation) with work on what it gave (scoring, encoding, placing
//! columns). One after the other, each phase left one of two cores idle for part of
//! its time; made a step ahead, the two overlap. One made piece waits at most, so the
//! memory grows by one piece. The same holds for two steps of a stage that do not
//! read each other's results: [`side_by_side`].

use std::sync::mpsc;

/// `consume(produce(item))` for every item in order, `produce` running on its own
/// thread one item ahead of `consume`. The first error of either stops both and is
/// returned; a panic of `produce` is resumed on the caller's thread.
///
/// Called on a worker of a rayon pool (the work is one of several already running side
/// by side), the items go one after the other on that thread: a worker waiting for the
/// maker could hold the very thread the maker's own parallel work waits for (two
/// snapshot dates side by side on two workers stopped the run that way).
pub fn made_ahead<I, T, E>(
    items: I,
    mut produce: impl FnMut(I::Item) -> Result<T, E> + Send,
    mut consume: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E>
where
    I: IntoIterator,
    I::IntoIter: Send,
    T: Send,
    E: Send,
{
    let items = items.into_iter();
    if rayon::current_thread_index().is_some() {
        return items.map(&mut produce).try_for_each(|piece| consume(piece?));
    }
    std::thread::scope(|s| {
        // A rendezvous: a made piece waits for `consume` to take it, so at most one
        // exists beside the one in use.
        let (made, taken) = mpsc::sync_channel(0);
        let maker = s.spawn(move || {
            for item in items {
                let piece = produce(item);
                let failed = piece.is_err();
                // A failed send: `consume` stopped on an error of its own.
                if made.send(piece).is_err() || failed {
                    return;
                }
            }
        });
        let consumed = taken.into_iter().try_for_each(|piece| consume(piece?));
        if let Err(panic) = maker.join() {
            std::panic::resume_unwind(panic);
        }
        consumed
    })
}

/// `(first(), second())`, with `second` on its own thread while `first` runs on the
/// caller's: for two steps that do not read each other's results and each leave a core
/// idle part of the time. A panic of `second` is resumed on the caller's thread. On a
/// worker of a rayon pool the two run one after the other, as in [`made_ahead`].
pub fn side_by_side<A, B: Send>(first: impl FnOnce() -> A, second: impl FnOnce() -> B + Send) -> (A, B) {
    if rayon::current_thread_index().is_some() {
        let a = first();
        return (a, second());
    }
    std::thread::scope(|s| {
        let other = s.spawn(second);
        let a = first();
        match other.join() {
            Ok(b) => (a, b),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{made_ahead, side_by_side};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_item_is_consumed_once_in_order() {
        let mut seen = Vec::new();
        made_ahead(
            0..100,
            |i| Ok::<_, String>(i * 2),
            |x| {
                seen.push(x);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        made_ahead(0..0, |i: i32| Ok::<_, String>(i), |_| Err("none to consume".to_string())).unwrap();
    }

    #[test]
    fn the_maker_goes_at_most_one_item_ahead() {
        let made = AtomicUsize::new(0);
        let mut ahead = Vec::new();
        made_ahead(
            0..50,
            |i| {
                made.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(i)
            },
            |i| {
                // Items 0..=i are taken; at most one more is made and waits to be taken.
                std::thread::sleep(std::time::Duration::from_micros(200));
                ahead.push(made.load(Ordering::SeqCst) - (i + 1));
                Ok(())
            },
        )
        .unwrap();
        assert!(ahead.iter().all(|&a| a <= 1), "{ahead:?}");
        assert!(ahead.contains(&1), "the maker never went ahead: {ahead:?}");
    }

    #[test]
    fn the_first_error_of_either_side_stops_both() {
        let made = AtomicUsize::new(0);
        let failed = made_ahead(
            0..1_000,
            |i| {
                made.fetch_add(1, Ordering::SeqCst);
                if i == 5 { Err(format!("made {i}")) } else { Ok(i) }
            },
            |_| Ok(()),
        );
        assert_eq!(failed, Err("made 5".to_string()));
        assert_eq!(made.load(Ordering::SeqCst), 6);
        let made = AtomicUsize::new(0);
        let mut consumed = 0;
        let failed = made_ahead(
            0..1_000,
            |i| {
                made.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(i)
            },
            |i| {
                consumed += 1;
                if i == 3 { Err(format!("consumed {i}")) } else { Ok(()) }
            },
        );
        assert_eq!(failed, Err("consumed 3".to_string()));
        assert_eq!(consumed, 4);
        assert!(made.load(Ordering::SeqCst) <= 5, "{}", made.load(Ordering::SeqCst));
    }

    #[test]
    fn on_a_pool_worker_the_items_go_one_after_the_other_on_it() {
        // Two workers each waiting for a maker whose work needs the pool would never
        // finish; here each call makes its items on its own worker.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let sums: Vec<i64> = pool.install(|| {
            use rayon::prelude::*;
            (0..4i64)
                .into_par_iter()
                .map(|k| {
                    let worker = std::thread::current().id();
                    let mut sum = 0;
                    made_ahead(
                        0..10i64,
                        |i| {
                            assert_eq!(std::thread::current().id(), worker);
                            Ok::<_, String>((0..100i64).into_par_iter().map(|j| j * i).sum::<i64>())
                        },
                        |x| {
                            sum += x + k;
                            Ok(())
                        },
                    )
                    .unwrap();
                    sum
                })
                .collect()
        });
        assert_eq!(sums, (0..4).map(|k| 4950 * 45 + 10 * k).collect::<Vec<_>>());
    }

    #[test]
    #[should_panic(expected = "maker failed")]
    fn a_panic_of_the_maker_reaches_the_caller() {
        let _ = made_ahead(0..3, |i| if i == 1 { panic!("maker failed") } else { Ok::<_, String>(i) }, |_| Ok(()));
    }

    #[test]
    fn side_by_side_runs_both_on_two_threads_and_gives_both_results() {
        let caller = std::thread::current().id();
        let (a, b) = side_by_side(|| (std::thread::current().id(), 1), || (std::thread::current().id(), "two"));
        assert_eq!(a, (caller, 1));
        assert_eq!(b.1, "two");
        assert_ne!(b.0, caller, "the second step runs on a thread of its own");
        // On a pool worker both run on that worker.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let (a, b) = pool.install(|| side_by_side(|| std::thread::current().id(), || std::thread::current().id()));
        assert_eq!(a, b);
    }

    #[test]
    fn a_panic_of_the_second_step_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| side_by_side(|| 1, || -> i32 { panic!("second step failed") }));
        let panic = caught.expect_err("the panic is resumed");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"second step failed"));
    }
}
