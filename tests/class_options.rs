//! Class weights, the ignore index, label smoothing and the z-loss of
//! cross-entropy and nll (SPEC §1b):
//! PyTorch's own values and gradients (tests/data/torch_class_options.json,
//! made by the script beside it) on every backend and the reference; an
//! independent f64 formula with per-sample weights and its central finite
//! differences; the identities (nll of log_softmax = cross-entropy, neutral
//! options = none); the rows an ignore index leaves out; and the errors.

mod common;

use common::{
    assert_all_close_with, assert_err, assert_scalar_close, check_torch_case, engines, floats, rng,
    to_f32,
};
use lossgpu::{cpu, Engine, Loss, LossInput, Reduction};
use rand::Rng;

const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::None];

fn loss_named(name: &str) -> Loss {
    Loss::from_name(name, Default::default()).unwrap()
}

/// Every backend's value and gradient against PyTorch's, for every
/// reduction: rtol 1e-5 (SPEC §5), and the gradient within atol 1e-6.
#[test]
fn pytorch_values_and_gradients_on_every_backend() {
    let text = std::fs::read_to_string("tests/data/torch_class_options.json").unwrap();
    let data: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert!(cases.len() >= 25, "the generated cases are missing");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let loss = match case["loss"].as_str().unwrap() {
            "multi-margin" => Loss::MultiMargin {
                margin: case["margin"].as_f64().unwrap() as f32,
                power: case["power"].as_u64().unwrap() as u32,
            },
            other => loss_named(other),
        };
        let m = case["m"].as_u64().unwrap() as usize;
        let pred = to_f32(&floats(&case["pred"]));
        let ignore = case["ignore_index"].as_i64();
        let probabilities = case["probabilities"].as_bool().unwrap();
        // Negative targets (the ignore index) as their u32 bits.
        let classes: Vec<u32> = match probabilities {
            true => vec![],
            false => case["target"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_i64().unwrap() as u32)
                .collect(),
        };
        let dist = to_f32(&floats(&case["target"]));
        let class_weights = case["class_weights"]
            .as_array()
            .map(|_| to_f32(&floats(&case["class_weights"])));
        let mut input = match probabilities {
            true => LossInput::rows(&pred, m, &dist),
            false => LossInput::classes(&pred, m, &classes),
        };
        if let Some(w) = &class_weights {
            input = input.with_class_weights(w);
        }
        if let Some(i) = ignore {
            input = input.with_ignore_index(i);
        }
        input = input
            .with_label_smoothing(case["label_smoothing"].as_f64().unwrap() as f32)
            .with_z_loss(case["z_loss"].as_f64().unwrap() as f32);
        for reduction in REDUCTIONS {
            let want = &case["reductions"][reduction.name()];
            let (value, grad) = (floats(&want["value"]), floats(&want["grad"]));
            let label = format!("{name} {}", reduction.name());
            check_torch_case(&label, &loss, &input, reduction, (&value, &grad), 1e-6);
        }
    }
}

/// Row i's loss written out from SPEC §1b in f64 (class weights w, label
/// smoothing ε, z-loss λ): (Σ aᵢ·lᵢ, Σ aᵢ·w[tᵢ]) over the kept rows.
struct Spec<'a> {
    loss: Loss,
    m: usize,
    x: &'a [f64],
    target: &'a [u32],
    a: &'a [f64],
    cw: &'a [f64],
    ignore: u32,
    smoothing: f64,
    z_loss: f64,
}

impl Spec<'_> {
    fn sums(&self, x: &[f64]) -> (f64, f64) {
        let (mut s, mut ws) = (0.0, 0.0);
        for (i, row) in x.chunks(self.m).enumerate() {
            let t = self.target[i];
            if t == self.ignore {
                continue;
            }
            let (y, e) = (t as usize, self.smoothing);
            let l = if let Loss::MultiMargin { margin, power } = self.loss {
                let hinge: f64 = (0..self.m)
                    .filter(|&j| j != y)
                    .map(|j| {
                        (margin as f64 - row[y] + row[j])
                            .max(0.0)
                            .powi(power as i32)
                    })
                    .sum();
                self.cw[y] * hinge / self.m as f64
            } else if self.loss == Loss::Nll {
                -self.cw[y] * row[y]
            } else {
                let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = mx + row.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
                let spread: f64 = row.iter().zip(self.cw).map(|(v, w)| w * (lse - v)).sum();
                (1.0 - e) * self.cw[y] * (lse - row[y])
                    + e / self.m as f64 * spread
                    + self.z_loss * self.cw[y] * lse * lse
            };
            s += self.a[i] * l;
            // multi-margin's mean divides by the rows (PyTorch).
            let by_class = !matches!(self.loss, Loss::MultiMargin { .. });
            ws += self.a[i] * if by_class { self.cw[y] } else { 1.0 };
        }
        (s, ws)
    }

    fn mean(&self, x: &[f64]) -> f64 {
        let (s, ws) = self.sums(x);
        s / ws
    }
}

/// Per-sample weights combine with class weights, the ignore index, label
/// smoothing and the z-loss as SPEC §1b writes (mean = Σ aᵢ·lᵢ /
/// Σ aᵢ·w[tᵢ] over the kept rows, lᵢ holding the class weights), and the
/// gradient is that mean's: central finite differences in f64.
#[test]
fn sample_weights_combine_and_gradients_match_finite_differences() {
    let mut rng = rng("class options fd");
    let cpu_engine = Engine::cpu();
    let margin = |margin, power| Loss::MultiMargin { margin, power };
    let cases = [
        (Loss::CrossEntropy, 13, 5, 0.0, 0.0),
        (Loss::CrossEntropy, 11, 6, 0.15, 0.01),
        (Loss::Nll, 9, 4, 0.0, 0.0),
        (Loss::CrossEntropy, 5, 90, 0.3, 0.002),
        (Loss::Nll, 3, 70, 0.0, 0.0),
        (margin(1.0, 1), 12, 5, 0.0, 0.0),
        (margin(0.7, 2), 10, 7, 0.0, 0.0),
        (margin(3.0, 2), 4, 100, 0.0, 0.0),
    ];
    for (loss, rows, m, smoothing, z_loss) in cases {
        let multi_margin = matches!(loss, Loss::MultiMargin { .. });
        let x: Vec<f32> = (0..rows * m).map(|_| rng.random_range(-4.0..4.0)).collect();
        // multi-margin takes no ignore index: no row matches u32::MAX.
        let ignore = if multi_margin { u32::MAX } else { 7u32 };
        let target: Vec<u32> = (0..rows)
            .map(|i| {
                if i % 4 == 1 && !multi_margin {
                    ignore
                } else {
                    rng.random_range(0..m as u32)
                }
            })
            .collect();
        let a: Vec<f32> = (0..rows).map(|_| rng.random_range(0.0..2.0)).collect();
        let cw: Vec<f32> = (0..m).map(|_| rng.random_range(0.1..3.0)).collect();
        let mut input = LossInput::classes(&x, m, &target)
            .with_weights(&a)
            .with_class_weights(&cw)
            .with_label_smoothing(smoothing)
            .with_z_loss(z_loss);
        if !multi_margin {
            input = input.with_ignore_index(ignore as i64);
        }
        let wide = |v: &[f32]| v.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        let (xd, ad, cwd) = (wide(&x), wide(&a), wide(&cw));
        let spec = Spec {
            smoothing: smoothing as f64,
            z_loss: z_loss as f64,
            loss,
            m,
            x: &xd,
            target: &target,
            a: &ad,
            cw: &cwd,
            ignore,
        };
        let want = spec.mean(spec.x);
        let h = 1e-6;
        let fd: Vec<f64> = (0..xd.len())
            .map(|k| {
                let (mut up, mut down) = (xd.clone(), xd.clone());
                up[k] += h;
                down[k] -= h;
                (spec.mean(&up) - spec.mean(&down)) / (2.0 * h)
            })
            .collect();
        let label = format!("{} {rows}x{m}", loss.name());
        assert_scalar_close(
            &label,
            cpu::loss_scalar(&loss, &input, Reduction::Mean).unwrap(),
            want,
            1e-12,
        );
        let g = cpu::loss_grad(&loss, &input, Reduction::Mean).unwrap();
        assert_all_close_with(&format!("{label} reference fd"), &to_f32(&g), &fd, |_| {
            (1e-6, 1e-8)
        });
        for engine in engines(&cpu_engine) {
            let at = format!("{label} {}", engine.device_name());
            let v = engine
                .loss(&loss, &input, Reduction::Mean)
                .unwrap()
                .scalar()
                .unwrap();
            assert_scalar_close(&at, v, want, 1e-5);
            let g = engine.loss_grad(&loss, &input, Reduction::Mean).unwrap();
            assert_all_close_with(&format!("{at} fd"), &g, &fd, |_| (1e-5, 1e-6));
        }
    }
}

/// nll of log_softmax(z) is cross-entropy of z; neutral options (class
/// weights of 1, an ignore index no row has) change nothing.
#[test]
fn identities_hold_on_every_backend() {
    let mut rng = rng("class options identities");
    let cpu_engine = Engine::cpu();
    let (rows, m) = (257, 7);
    let z: Vec<f32> = (0..rows * m).map(|_| rng.random_range(-6.0..6.0)).collect();
    let target: Vec<u32> = (0..rows).map(|_| rng.random_range(0..m as u32)).collect();
    let cw: Vec<f32> = (0..m).map(|_| rng.random_range(0.5..2.0)).collect();
    let log_softmax: Vec<f32> = z
        .chunks(m)
        .flat_map(|row| {
            let mx = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let lse = mx + row.iter().map(|&v| (v as f64 - mx).exp()).sum::<f64>().ln();
            row.iter().map(move |&v| (v as f64 - lse) as f32)
        })
        .collect();
    let ones = vec![1.0f32; m];
    for engine in engines(&cpu_engine) {
        let at = engine.device_name();
        for reduction in [Reduction::Mean, Reduction::Sum] {
            let value = |loss: Loss, input: LossInput| {
                engine
                    .loss(&loss, &input, reduction)
                    .unwrap()
                    .scalar()
                    .unwrap()
            };
            let ce = LossInput::classes(&z, m, &target)
                .with_class_weights(&cw)
                .with_ignore_index(-100);
            let nll = LossInput::classes(&log_softmax, m, &target)
                .with_class_weights(&cw)
                .with_ignore_index(-100);
            assert_scalar_close(
                &format!("{at} nll(log_softmax) = ce"),
                value(Loss::Nll, nll),
                value(Loss::CrossEntropy, ce),
                1e-5,
            );
            let plain = LossInput::classes(&z, m, &target);
            let neutral = plain.with_class_weights(&ones).with_ignore_index(m as i64);
            let (a, b) = (
                value(Loss::CrossEntropy, plain),
                value(Loss::CrossEntropy, neutral),
            );
            assert_scalar_close(&format!("{at} neutral options"), b, a, 1e-6);
            let (ga, gb) = (
                engine
                    .loss_grad(&Loss::CrossEntropy, &plain, reduction)
                    .unwrap(),
                engine
                    .loss_grad(&Loss::CrossEntropy, &neutral, reduction)
                    .unwrap(),
            );
            let ga: Vec<f64> = ga.iter().map(|&v| v as f64).collect();
            // Within SPEC §5, not to the bit: on the CPU backend class
            // options take the f64 formulas, plain calls the f32 loops.
            assert_all_close_with(&format!("{at} neutral options grad"), &gb, &ga, |_| {
                (1e-5, 1e-6)
            });
        }
    }
}

/// An ignored row is not read: a NaN there, or a target past m, leaves the
/// value finite and the row's gradient 0; a NaN in a kept row still
/// propagates; nll reads only p_t of its row; every row ignored gives a NaN
/// mean (PyTorch), a sum of 0 and a zero gradient.
#[test]
fn ignored_rows_are_left_out() {
    let cpu_engine = Engine::cpu();
    let m = 3;
    let mut z = vec![0.5f32, -1.0, 2.0, f32::NAN, 1.0, 0.0, 3.0, 1.0, -2.0];
    let target = [2u32, 9, 0];
    for engine in engines(&cpu_engine) {
        let at = engine.device_name();
        let input = LossInput::classes(&z, m, &target).with_ignore_index(9);
        for loss in [Loss::CrossEntropy, Loss::Nll] {
            let v = engine
                .loss(&loss, &input, Reduction::Mean)
                .unwrap()
                .scalar()
                .unwrap();
            assert!(v.is_finite(), "{at} {loss:?}: {v}");
            let g = engine.loss_grad(&loss, &input, Reduction::Mean).unwrap();
            assert!(g[3..6].iter().all(|&d| d == 0.0), "{at} {loss:?}: {g:?}");
            assert!(g.iter().all(|d| d.is_finite()), "{at} {loss:?}: {g:?}");
        }
        // Without the ignore index, row 1's class 9 is an error.
        assert_err(
            engine.loss(
                &Loss::CrossEntropy,
                &LossInput::classes(&z, m, &target),
                Reduction::Mean,
            ),
            "target",
        );
        let all = [9u32, 9, 9];
        let none_kept = LossInput::classes(&z, m, &all).with_ignore_index(9);
        for loss in [Loss::CrossEntropy, Loss::Nll] {
            let mean = engine
                .loss(&loss, &none_kept, Reduction::Mean)
                .unwrap()
                .scalar()
                .unwrap();
            assert!(mean.is_nan(), "{at} {loss:?}: all ignored gives {mean}");
            let sum = engine
                .loss(&loss, &none_kept, Reduction::Sum)
                .unwrap()
                .scalar()
                .unwrap();
            assert_eq!(sum, 0.0, "{at} {loss:?}");
            let g = engine
                .loss_grad(&loss, &none_kept, Reduction::Mean)
                .unwrap();
            assert!(g.iter().all(|&d| d == 0.0), "{at} {loss:?}: {g:?}");
        }
    }
    // A NaN in a kept row: cross-entropy's row is NaN, nll's only where p_t is.
    z[1] = f32::NAN;
    for engine in engines(&cpu_engine) {
        let at = engine.device_name();
        let input = LossInput::classes(&z, m, &target).with_ignore_index(9);
        let ce = engine
            .loss(&Loss::CrossEntropy, &input, Reduction::Sum)
            .unwrap()
            .scalar()
            .unwrap();
        assert!(ce.is_nan(), "{at}: {ce}");
        let nll = engine
            .loss(&Loss::Nll, &input, Reduction::Sum)
            .unwrap()
            .scalar()
            .unwrap();
        assert_eq!(nll, -2.0 - 3.0, "{at}");
        let g = engine
            .loss_grad(&Loss::Nll, &input, Reduction::Sum)
            .unwrap();
        assert_eq!(
            g,
            vec![0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0],
            "{at}"
        );
    }
}

/// Each wrong option is refused before any work, naming what is wrong.
#[test]
fn bad_options_name_the_problem() {
    let cpu_engine = Engine::cpu();
    let z = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6];
    let classes = [0u32, 2];
    let dist = [0.2f32, 0.3, 0.5, 1.0, 0.0, 0.0];
    let p = [0.5f32, 0.5];
    for engine in engines(&cpu_engine) {
        let ce = |input: LossInput| engine.loss(&Loss::CrossEntropy, &input, Reduction::Mean);
        let base = LossInput::classes(&z, 3, &classes);
        assert_err(
            ce(base.with_class_weights(&[1.0, 2.0])),
            "2 class weights for 3 classes",
        );
        assert_err(
            ce(base.with_class_weights(&[1.0, -2.0, 1.0])),
            "class weights",
        );
        assert_err(ce(base.with_class_weights(&[1.0, f32::NAN, 1.0])), "NaN");
        assert_err(ce(base.with_ignore_index(1 << 33)), "ignore index");
        assert_err(
            ce(LossInput::rows(&z, 3, &dist).with_ignore_index(0)),
            "class-index targets",
        );
        assert_err(
            engine.loss(
                &Loss::Mse,
                &LossInput::new(&p, &p).with_class_weights(&[1.0]),
                Reduction::Mean,
            ),
            "mse takes no class weights",
        );
        assert_err(
            engine.loss(
                &Loss::ZeroOne,
                &LossInput::classes(&z, 3, &classes).with_ignore_index(0),
                Reduction::Mean,
            ),
            "zero-one takes no ignore index",
        );
        assert_err(
            engine.loss(&Loss::Nll, &LossInput::rows(&z, 3, &dist), Reduction::Mean),
            "nll needs one class index per row",
        );
        assert_err(
            ce(base.with_label_smoothing(1.5)),
            "label smoothing must be in [0, 1]",
        );
        assert_err(ce(base.with_label_smoothing(f32::NAN)), "label smoothing");
        assert_err(
            ce(base.with_z_loss(-1.0)),
            "z-loss must be a finite number >= 0",
        );
        assert_err(ce(base.with_z_loss(f32::INFINITY)), "z-loss");
        let nll = |input: LossInput| engine.loss(&Loss::Nll, &input, Reduction::Mean);
        assert_err(
            nll(base.with_label_smoothing(0.1)),
            "nll takes no label smoothing",
        );
        assert_err(nll(base.with_z_loss(0.1)), "nll takes no z-loss");
        let mm = |loss: Loss, input: LossInput| engine.loss(&loss, &input, Reduction::Mean);
        let hinge = Loss::MultiMargin {
            margin: 1.0,
            power: 1,
        };
        assert_err(
            mm(hinge, base.with_ignore_index(0)),
            "multi-margin takes no ignore index",
        );
        assert_err(
            mm(
                Loss::MultiMargin {
                    margin: 1.0,
                    power: 3,
                },
                base,
            ),
            "--power must be 1 or 2",
        );
        assert_err(
            mm(
                Loss::MultiMargin {
                    margin: f32::NAN,
                    power: 1,
                },
                base,
            ),
            "--margin must be a finite number",
        );
        assert_err(
            mm(hinge, LossInput::rows(&z, 3, &dist)),
            "multi-margin needs one class index per row",
        );
        assert_err(
            engine.loss(
                &Loss::Huber { delta: 1.0 },
                &LossInput::new(&p, &p).with_z_loss(0.1),
                Reduction::Mean,
            ),
            "huber takes no z-loss",
        );
    }
}

/// Many rows: past 1024 row workgroups (gpu_narrow's 2-D grid), across
/// binding chunks (gpu_small), and over many CPU blocks, each backend
/// agrees with the reference with ignored rows spread through and every
/// option on.
#[test]
fn many_rows_agree_with_the_reference() {
    let mut rng = rng("class options many rows");
    let cpu_engine = Engine::cpu();
    for (rows, m) in [(3001, 3), (70001, 2), (1100, 80)] {
        let z: Vec<f32> = (0..rows * m).map(|_| rng.random_range(-8.0..8.0)).collect();
        let target: Vec<u32> = (0..rows)
            .map(|_| match rng.random_range(0..5) {
                0 => -100i32 as u32,
                _ => rng.random_range(0..m as u32),
            })
            .collect();
        let cw: Vec<f32> = (0..m).map(|_| rng.random_range(0.0..2.0)).collect();
        // nll's inputs are log-probabilities (≤ 0): over logits of both
        // signs its mean cancels to near 0, below any relative tolerance.
        let log_p: Vec<f32> = z.iter().map(|v| -v.abs()).collect();
        for loss in [Loss::CrossEntropy, Loss::Nll] {
            let x = if loss == Loss::Nll { &log_p } else { &z };
            let mut input = LossInput::classes(x, m, &target)
                .with_class_weights(&cw)
                .with_ignore_index(-100);
            if loss == Loss::CrossEntropy {
                input = input.with_label_smoothing(0.1).with_z_loss(1e-3);
            }
            let label = format!("{} {rows}x{m}", loss.name());
            agree_with_reference(&label, &engines(&cpu_engine), &loss, &input);
        }
    }
}

/// Every cross-entropy option at once on odd shapes — one row, short rows
/// (the CPU's transposed groups), rows past its 32-value cut, 65,537 rows,
/// and on the CPU rows past its 4096-value tile (past gpu_small's binding)
/// — with class targets (a fifth ignored) and probability targets, logits
/// up to ±1e4: each backend's value, per-sample values and gradient agree
/// with the f64 reference.
#[test]
fn every_option_on_odd_shapes_and_extreme_logits() {
    let mut rng = rng("class options odd shapes");
    let cpu_engine = Engine::cpu();
    let shapes = [
        (1, 7, 8.0),
        (255, 31, 8.0),
        (257, 33, 1e4),
        (9, 509, 8.0),
        (7, 4099, 8.0),
        (65537, 5, 1e4),
    ];
    for (rows, m, scale) in shapes {
        let z: Vec<f32> = (0..rows * m)
            .map(|_| rng.random_range(-scale..scale))
            .collect();
        let classes: Vec<u32> = (0..rows)
            .map(|i| match (i, rng.random_range(0..5)) {
                (0, _) | (_, 1..) => rng.random_range(0..m as u32),
                _ => -100i32 as u32,
            })
            .collect();
        let mut dist: Vec<f32> = (0..rows * m)
            .map(|_| match rng.random_range(0..3) {
                0 => 0.0,
                _ => rng.random_range(0.0..1.0),
            })
            .collect();
        for row in dist.chunks_mut(m) {
            let s: f32 = row.iter().sum::<f32>().max(f32::MIN_POSITIVE);
            row.iter_mut().for_each(|v| *v /= s);
        }
        let cw: Vec<f32> = (0..m).map(|_| rng.random_range(0.0..2.0)).collect();
        let a: Vec<f32> = (0..rows).map(|_| rng.random_range(0.0..2.0)).collect();
        for (smoothing, z_loss) in [(0.0, 0.0), (0.1, 1e-4), (1.0, 0.0)] {
            let by_class = LossInput::classes(&z, m, &classes).with_ignore_index(-100);
            let by_prob = LossInput::rows(&z, m, &dist);
            for (kind, input) in [("classes", by_class), ("probabilities", by_prob)] {
                let input = input
                    .with_class_weights(&cw)
                    .with_weights(&a)
                    .with_label_smoothing(smoothing)
                    .with_z_loss(z_loss);
                let label = format!("{kind} {rows}x{m} ±{scale} ε={smoothing} λ={z_loss}");
                let on = match m > 1024 {
                    true => vec![&cpu_engine],
                    false => engines(&cpu_engine),
                };
                agree_with_reference(&label, &on, &Loss::CrossEntropy, &input);
            }
        }
    }
}

/// An input's mean, gradient and per-sample values on engines `on`
/// against the reference: rtol 1e-5 (SPEC §5), gradients within 1e-6.
fn agree_with_reference(label: &str, on: &[&Engine], loss: &Loss, input: &LossInput) {
    let want = cpu::loss_scalar(loss, input, Reduction::Mean).unwrap();
    let want_grad = cpu::loss_grad(loss, input, Reduction::Mean).unwrap();
    let want_none = cpu::loss_per_sample(loss, input).unwrap();
    for engine in on {
        let at = format!("{label} {}", engine.device_name());
        let (v, g) = engine.loss_and_grad(loss, input, Reduction::Mean).unwrap();
        assert_scalar_close(&at, v.scalar().unwrap(), want, 1e-5);
        assert_all_close_with(&format!("{at} grad"), &g, &want_grad, |_| (1e-5, 1e-6));
        let none = engine.loss(loss, input, Reduction::None).unwrap();
        let none = none.per_sample().unwrap();
        assert_all_close_with(&format!("{at} none"), none, &want_none, |_| (1e-5, 1e-6));
    }
}
