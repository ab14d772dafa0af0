//! The ceilings every figure is shown as a fraction of: the adapter's copy
//! and minimal read kernel, and the host's single-pass read.

use super::ops::Data;
use super::timing::{time, Timing};
use lossgpu::probe::Probe;
use lossgpu::{Engine, Result, Tensor};
use rayon::prelude::*;

/// Σ x (and Σ y) in one pass with 64 independent f32 lanes (several vector
/// chains at any width), compiled for the CPU it runs on, so the loop runs
/// at memory speed rather than at the latency of one dependent add.
#[multiversion::multiversion(targets = "simd")]
pub(super) fn lanes_sum(x: &[f32], y: Option<&[f32]>) -> f32 {
    const L: usize = 64;
    let mut acc = [0.0f32; L];
    match y {
        None => {
            let chunks = x.chunks_exact(L);
            let rest: f32 = chunks.remainder().iter().sum();
            for c in chunks {
                for k in 0..L {
                    acc[k] += c[k];
                }
            }
            acc.iter().sum::<f32>() + rest
        }
        Some(y) => {
            let (cx, cy) = (x.chunks_exact(L), y.chunks_exact(L));
            let rest: f32 = cx.remainder().iter().chain(cy.remainder()).sum();
            for (a, b) in cx.zip(cy) {
                for k in 0..L {
                    acc[k] += a[k] + b[k];
                }
            }
            acc.iter().sum::<f32>() + rest
        }
    }
}

/// [`lanes_sum`] over blocks of 64 Ki values on every rayon thread.
pub(super) fn lanes_sum_all_cores(x: &[f32], y: Option<&[f32]>) -> f32 {
    const BLOCK: usize = 1 << 16;
    match y {
        None => x.par_chunks(BLOCK).map(|a| lanes_sum(a, None)).sum(),
        Some(y) => x
            .par_chunks(BLOCK)
            .zip(y.par_chunks(BLOCK))
            .map(|(a, b)| lanes_sum(a, Some(b)))
            .sum(),
    }
}

/// The ceilings at one size; index k − 1 is for k input tensors.
pub(super) struct Ceilings {
    pub(super) n: usize,
    /// GPU buffer-to-buffer copy of 1 or 2 tensors.
    pub(super) copy: [Option<Timing>; 2],
    /// GPU minimal read kernel over 1 or 2 tensors.
    pub(super) read: [Option<Timing>; 2],
    /// Host single-pass read on one thread.
    pub(super) host_one: [Timing; 2],
    /// Host single-pass read on all cores.
    pub(super) host_all: [Timing; 2],
}

impl Ceilings {
    pub(super) fn measure(
        quick: bool,
        n: usize,
        d: &Data,
        gpu: Option<(&Engine, &Tensor, &Tensor)>,
    ) -> Result<Ceilings> {
        let (mut copy, mut read) = ([None; 2], [None; 2]);
        if let Some((g, x, t)) = gpu {
            let probe = Probe::new(g)?;
            copy[0] = Some(time(quick, || probe.copy(&[x]))?.0);
            copy[1] = Some(time(quick, || probe.copy(&[x, t]))?.0);
            read[0] = Some(time(quick, || probe.read(&[x]))?.0);
            read[1] = Some(time(quick, || probe.read(&[x, t]))?.0);
        }
        let (x, t) = (&d.x[..], Some(&d.t[..]));
        Ok(Ceilings {
            n,
            copy,
            read,
            host_one: [
                time(quick, || Ok(lanes_sum(x, None)))?.0,
                time(quick, || Ok(lanes_sum(x, t)))?.0,
            ],
            host_all: [
                time(quick, || Ok(lanes_sum_all_cores(x, None)))?.0,
                time(quick, || Ok(lanes_sum_all_cores(x, t)))?.0,
            ],
        })
    }
}
