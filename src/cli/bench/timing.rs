//! Timing: a warm-up, then the median of as many runs as fit a budget.

use super::{BUDGET, MAX_REPS, MIN_REPS, SAMPLE, WARM_UP};
use lossgpu::{Engine, Error, Result};
use std::hint::black_box;
use std::time::Instant;

#[derive(Clone, Copy)]
pub(super) struct Timing {
    pub(super) seconds: f64,
    pub(super) reps: usize,
}

/// Times `f`: a warm-up, then MIN_REPS..=MAX_REPS runs (exactly MIN_REPS
/// with `quick`); returns the median and the last result.
pub(super) fn time<T>(quick: bool, mut f: impl FnMut() -> Result<T>) -> Result<(Timing, T)> {
    black_box(f()?);
    let mut times = Vec::new();
    let mut reps = MIN_REPS;
    loop {
        let start = Instant::now();
        let out = black_box(f()?);
        times.push(start.elapsed().as_secs_f64());
        if times.len() == 1 && !quick {
            reps = ((BUDGET / times[0].max(1e-9)).ceil() as usize).clamp(MIN_REPS, MAX_REPS);
        }
        if times.len() >= reps {
            return Ok((
                Timing {
                    seconds: median(times),
                    reps,
                },
                out,
            ));
        }
    }
}

/// Times `f` on each engine in turns (a warm-up of [`WARM_UP`] seconds
/// each, then one sample of each per round in a rotating order, a sample
/// being as many calls as fill SAMPLE, as many rounds as [`time`] would
/// give the slowest); returns each engine's median and last result, in
/// order.
pub(super) fn time_in_turns<T>(
    quick: bool,
    engines: &[&Engine],
    f: impl Fn(&Engine) -> Result<T>,
) -> Result<Vec<(Timing, T)>> {
    let mut outs = Vec::with_capacity(engines.len());
    // Calls per sample: enough for SAMPLE seconds, so that a call of a few
    // microseconds is not timed alone.
    let mut inner = Vec::with_capacity(engines.len());
    for e in engines {
        outs.push(Some(black_box(f(e)?)));
        let warm = Instant::now();
        while !quick && warm.elapsed().as_secs_f64() < WARM_UP {
            black_box(f(e)?);
        }
        let start = Instant::now();
        black_box(f(e)?);
        let once = start.elapsed().as_secs_f64().max(1e-9);
        inner.push(((SAMPLE / once).ceil() as usize).clamp(1, 1000));
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); engines.len()];
    let mut reps = MIN_REPS;
    for round in 0.. {
        // Each round starts one column later: a run right after the GPU's
        // shares the cores with the driver's threads winding down, so no
        // column may always come second.
        for i in 0..engines.len() {
            let k = (round + i) % engines.len();
            let start = Instant::now();
            for _ in 0..inner[k] {
                // The last result goes before the next call, as in a loop
                // whose body holds it, and as benches/peers.py's peers
                // drop theirs: both sides then allocate alike. (Holding
                // two 64 MiB results in turns looked slower on the 2-vCPU
                // VM, but a 2^24 sigmoid there runs at one core's speed,
                // 25 ms instead of 13, in phases of a fraction of a second
                // either way.)
                outs[k] = None;
                outs[k] = Some(black_box(f(engines[k])?));
            }
            times[k].push(start.elapsed().as_secs_f64() / inner[k] as f64);
        }
        if round == 0 && !quick {
            let slowest = (times.iter().zip(&inner))
                .map(|(t, &k)| t[0] * k as f64)
                .fold(1e-9, f64::max);
            reps = ((BUDGET / slowest).ceil() as usize).clamp(MIN_REPS, MAX_REPS);
        }
        if round + 1 >= reps {
            break;
        }
    }
    times
        .into_iter()
        .zip(outs)
        .map(|(t, out)| {
            Ok((
                Timing {
                    seconds: median(t),
                    reps,
                },
                out.ok_or_else(no_timing)?,
            ))
        })
        .collect()
}

pub(super) fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(|a, b| a.total_cmp(b));
    let mid = times.len() / 2;
    if times.len() % 2 == 1 {
        times[mid]
    } else {
        (times[mid - 1] + times[mid]) / 2.0
    }
}

pub(super) fn no_timing() -> Error {
    Error::InvalidInput("bench: a column was not timed".into())
}
