//! What the benchmark times: the inputs at one size, the operations on
//! host slices and on resident tensors, and the batch row.

use super::timing::{time, Timing};
use super::{BATCH, BATCH_N, CLASSES};
use crate::cli::io::reserve;
use lossgpu::{
    bf16, Activation, ActivationParams, ClassTensor, Engine, Error, Loss, LossInput, Pass,
    Reduction, Result, Tensor,
};
use std::hint::black_box;

/// The benchmark's inputs at one size; the same every run.
pub(super) struct Data {
    pub(super) x: Vec<f32>,
    pub(super) t: Vec<f32>,
    pub(super) classes: Vec<u32>,
    /// x and t rounded to bf16, for the bf16 rows.
    pub(super) xb: Vec<bf16>,
    pub(super) tb: Vec<bf16>,
}

pub(super) fn data(n: usize) -> Result<Data> {
    // A fixed xorshift generator.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let (mut x, mut t) = (reserve(n)?, reserve(n)?);
    let mut classes = reserve(n / CLASSES)?;
    x.extend((0..n).map(|_| (next() - 0.5) * 8.0));
    t.extend((0..n).map(|_| next()));
    classes.extend((0..n / CLASSES).map(|_| (next() * CLASSES as f32) as u32 % CLASSES as u32));
    let (mut xb, mut tb) = (reserve(n)?, reserve(n)?);
    xb.extend(x.iter().map(|&v| bf16::from_f32(v)));
    tb.extend(t.iter().map(|&v| bf16::from_f32(v)));
    Ok(Data {
        x,
        t,
        classes,
        xb,
        tb,
    })
}

/// What an operation returns, compared GPU against CPU after the timing.
pub(super) enum Out {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Out {
    pub(super) fn values(&self) -> Vec<f64> {
        match self {
            Out::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Out::F64(v) => v.clone(),
        }
    }
}

#[derive(Clone, Copy)]
pub(super) enum Op {
    Act(Activation, Pass),
    /// The mean loss, or with `true` the gradient of the sum (O(1) values,
    /// so the max err means something).
    Loss(Loss, bool),
    /// `Engine::regression_metrics`: eight metrics in one pass.
    Metrics,
    /// The mean loss on bf16 inputs (2 bytes a value).
    Bf16(Loss),
    /// `Engine::grad_stats` of x: norm, max |x|, NaN/inf counts, vanishing
    /// share.
    GradStats,
}

impl Op {
    pub(super) fn name(&self) -> String {
        match self {
            Op::Act(a, Pass::Forward) => a.name().to_string(),
            Op::Act(a, _) => format!("{}'", a.name()),
            Op::Loss(Loss::CrossEntropy, g) => {
                format!("cross-entropy m={CLASSES}{}", if *g { " grad" } else { "" })
            }
            Op::Loss(l, g) => format!("{}{}", l.name(), if *g { " grad" } else { "" }),
            Op::Metrics => "metrics (fused)".to_string(),
            Op::Bf16(l) => format!("{} bf16", Op::Loss(*l, false).name()),
            Op::GradStats => "grad-stats".to_string(),
        }
    }

    /// The f32 row a bf16 row reads twice the bytes of.
    pub(super) fn f32_twin(&self) -> Option<String> {
        match self {
            Op::Bf16(l) => Some(Op::Loss(*l, false).name()),
            _ => None,
        }
    }

    /// Elements processed at size n (whole rows for cross-entropy).
    pub(super) fn elements(&self, n: usize) -> usize {
        match self {
            Op::Loss(Loss::CrossEntropy, _) | Op::Bf16(Loss::CrossEntropy) => n / CLASSES * CLASSES,
            _ => n,
        }
    }

    /// Input tensors of n f32 values read, for the ceilings: cross-entropy
    /// reads its scores and n/10 class indices, counted as one tensor; two
    /// bf16 inputs are the bytes of one f32 tensor (and bf16 cross-entropy,
    /// about half of one, is counted as one).
    pub(super) fn inputs(&self) -> usize {
        match self {
            Op::Act(..) | Op::Loss(Loss::CrossEntropy, _) | Op::Bf16(_) | Op::GradStats => 1,
            _ => 2,
        }
    }

    /// Bytes read and written once each.
    pub(super) fn bytes(&self, n: usize) -> usize {
        match self {
            Op::Act(..) => 8 * n,
            Op::Loss(Loss::CrossEntropy, g) => {
                let n = self.elements(n);
                4 * n + 4 * n / CLASSES + if *g { 4 * n } else { 0 }
            }
            Op::Loss(_, g) => 8 * n + if *g { 4 * n } else { 0 },
            Op::Metrics => 8 * n,
            Op::Bf16(Loss::CrossEntropy) => {
                let n = self.elements(n);
                2 * n + 4 * n / CLASSES
            }
            Op::Bf16(_) | Op::GradStats => 4 * n,
        }
    }

    /// End to end from host slices.
    pub(super) fn host(&self, engine: &Engine, d: &Data) -> Result<Out> {
        Ok(match self {
            Op::Act(a, Pass::Forward) => Out::F32(engine.activation(a, &d.x)?),
            Op::Act(a, _) => Out::F32(engine.activation_derivative(a, &d.x)?),
            Op::Loss(l, grad) => {
                let rows = d.classes.len();
                let input = match l {
                    Loss::CrossEntropy => {
                        LossInput::classes(&d.x[..rows * CLASSES], CLASSES, &d.classes)
                    }
                    _ => LossInput::new(&d.x, &d.t),
                };
                if *grad {
                    Out::F32(engine.loss_grad(l, &input, Reduction::Sum)?)
                } else {
                    let v = engine.loss(l, &input, Reduction::Mean)?;
                    Out::F64(vec![v.scalar().unwrap_or(f64::NAN)])
                }
            }
            Op::Metrics => {
                let m = engine.regression_metrics(&LossInput::new(&d.x, &d.t), 1.0, 0.5)?;
                Out::F64(vec![
                    m.mse, m.rmse, m.mae, m.mape, m.smape, m.huber, m.log_cosh, m.quantile,
                ])
            }
            Op::Bf16(l) => {
                let rows = d.classes.len();
                let v = match l {
                    Loss::CrossEntropy => engine.loss(
                        l,
                        &LossInput::classes(&d.xb[..rows * CLASSES], CLASSES, &d.classes),
                        Reduction::Mean,
                    )?,
                    _ => engine.loss(l, &LossInput::new(&d.xb, &d.tb), Reduction::Mean)?,
                };
                Out::F64(vec![v.scalar().unwrap_or(f64::NAN)])
            }
            Op::GradStats => {
                let s = engine.grad_stats(&d.x, 1e-6)?;
                Out::F64(vec![s.l2_norm, s.max_abs, s.vanishing_fraction])
            }
        })
    }

    /// Whether the library has a path on resident tensors: activations and
    /// losses do; the metrics and the gradient statistics (timed from the
    /// host) do not.
    pub(super) fn has_resident(&self) -> bool {
        !matches!(self, Op::Metrics | Op::GradStats)
    }

    /// On resident tensors (see [`Op::has_resident`]); waits for the result.
    pub(super) fn resident(&self, engine: &Engine, r: &Resident) -> Result<()> {
        let (x, t) = (&r.x, &r.t);
        match self {
            Op::Act(a, pass) => {
                let y = engine.activation_tensor(a, *pass, x, None)?;
                engine.synchronize()?;
                drop(black_box(y));
            }
            Op::Loss(l @ Loss::CrossEntropy, false) => drop(black_box(engine.loss_tensor(
                l,
                &r.logits,
                &r.classes,
                Reduction::Mean,
            )?)),
            Op::Loss(l @ Loss::CrossEntropy, true) => {
                let g = engine.loss_grad_tensor(l, &r.logits, &r.classes, Reduction::Sum)?;
                engine.synchronize()?;
                drop(black_box(g));
            }
            Op::Loss(l, false) => drop(black_box(engine.loss_tensor(l, x, t, Reduction::Mean)?)),
            Op::Loss(l, true) => {
                let g = engine.loss_grad_tensor(l, x, t, Reduction::Sum)?;
                engine.synchronize()?;
                drop(black_box(g));
            }
            Op::Metrics | Op::GradStats => {
                return Err(Error::InvalidInput(format!(
                    "{} has no resident path in the benchmark",
                    self.name()
                )))
            }
            Op::Bf16(l @ Loss::CrossEntropy) => drop(black_box(engine.loss_tensor(
                l,
                &r.logits_b,
                &r.classes,
                Reduction::Mean,
            )?)),
            Op::Bf16(l) => drop(black_box(engine.loss_tensor(
                l,
                &r.xb,
                &r.tb,
                Reduction::Mean,
            )?)),
        }
        Ok(())
    }
}

/// The inputs uploaded once per size: x and t, and cross-entropy's whole
/// rows of logits with their class indices.
pub(super) struct Resident {
    pub(super) x: Tensor,
    pub(super) t: Tensor,
    pub(super) logits: Tensor,
    pub(super) classes: ClassTensor,
    pub(super) xb: Tensor<bf16>,
    pub(super) tb: Tensor<bf16>,
    pub(super) logits_b: Tensor<bf16>,
}

impl Resident {
    pub(super) fn upload(g: &Engine, d: &Data) -> Result<Resident> {
        Ok(Resident {
            x: g.upload(&d.x)?,
            t: g.upload(&d.t)?,
            logits: g.upload_rows(&d.x[..d.classes.len() * CLASSES], CLASSES)?,
            classes: g.upload_classes(&d.classes)?,
            xb: g.upload(&d.xb)?,
            tb: g.upload(&d.tb)?,
            logits_b: g.upload_rows(&d.xb[..d.classes.len() * CLASSES], CLASSES)?,
        })
    }
}

/// The operations timed at every size.
pub(super) fn ops() -> Result<Vec<Op>> {
    let act = |name| Activation::from_name(name, ActivationParams::default());
    let mut ops = vec![
        Op::Act(act("sigmoid")?, Pass::Forward),
        Op::Act(act("tanh")?, Pass::Forward),
        Op::Act(act("swish")?, Pass::Forward),
        Op::Act(act("sigmoid")?, Pass::Derivative),
        Op::Act(act("relu")?, Pass::Forward),
    ];
    for loss in [
        Loss::Mse,
        Loss::Huber { delta: 1.0 },
        Loss::BceLogits,
        Loss::CrossEntropy,
    ] {
        ops.push(Op::Loss(loss, false));
        ops.push(Op::Loss(loss, true));
    }
    // Memory-bound values, measured against the host read ceiling.
    ops.push(Op::Loss(Loss::Mae, false));
    ops.push(Op::Loss(Loss::Quantile { gamma: 0.5 }, false));
    ops.push(Op::Metrics);
    // bf16 inputs: half the bytes of the f32 rows above.
    ops.extend([Loss::Mse, Loss::BceLogits, Loss::CrossEntropy].map(Op::Bf16));
    // One read of a gradient, from the host.
    ops.push(Op::GradStats);
    Ok(ops)
}

/// max |gpu − cpu| / max(1, |cpu|): absolute error near zero, relative
/// error for large values. NaN in either side counts only if not in both.
pub(super) fn max_err(gpu: &[f64], cpu: &[f64]) -> f64 {
    if gpu.len() != cpu.len() {
        return f64::INFINITY;
    }
    gpu.iter()
        .zip(cpu)
        .map(|(&g, &c)| {
            if g.is_nan() && c.is_nan() || g == c {
                0.0
            } else if g.is_nan() || c.is_nan() {
                f64::INFINITY
            } else {
                (g - c).abs() / c.abs().max(1.0)
            }
        })
        .fold(0.0, f64::max)
}

/// The batch row: BATCH losses of BATCH_N values.
pub(super) struct Batch {
    /// (engine label, batched, separate)
    pub(super) times: Vec<(&'static str, Timing, Timing)>,
}

impl Batch {
    pub(super) fn measure(quick: bool, engines: &[(&'static str, &Engine)]) -> Result<Batch> {
        let sets: Vec<Data> = (0..BATCH)
            .map(|k| data(BATCH_N + k % 2))
            .collect::<Result<_>>()?;
        let items: Vec<(Loss, LossInput)> = sets
            .iter()
            .map(|d| (Loss::Mse, LossInput::new(&d.x[..BATCH_N], &d.t[..BATCH_N])))
            .collect();
        let mut times = Vec::new();
        for &(label, engine) in engines {
            let batched = time(quick, || engine.loss_batch(&items, Reduction::Mean))?.0;
            let separate = time(quick, || {
                items
                    .iter()
                    .map(|(l, i)| engine.loss(l, i, Reduction::Mean))
                    .collect::<Result<Vec<_>>>()
            })?
            .0;
            times.push((label, batched, separate));
        }
        Ok(Batch { times })
    }
}
