//! Fused linear + cross-entropy against the f64 reference (the logits
//! materialised in f64) on odd shapes, with and without bias, ignore index,
//! label smoothing and z-loss, every reduction, f32 and bf16 inputs, on the
//! CPU and every GPU engine (the small one cuts the vocabulary into many
//! chunks whose bindings start mid-row); the reference's gradients against
//! finite differences; the fused result against materialising the logits
//! and calling cross-entropy; ignored rows adding nothing; errors.

mod common;

use common::{agrees, assert_err, engines, gpu, rng};
use lossgpu::{bf16, cpu, Engine, LinearInput, Loss, LossInput, LossValue, Reduction};
use rand::rngs::StdRng;
use rand::Rng;

/// Values of scale `s` with a few large ones.
fn values(rng: &mut StdRng, n: usize, s: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let v = (rng.random::<f32>() - 0.5) * 2.0 * s;
            if i % 97 == 13 {
                v * 8.0
            } else {
                v
            }
        })
        .collect()
}

/// got within rtol 1e-5 of want, plus 1e-5 of the array's RMS (a matrix
/// product's f32 error scales with the magnitude of its terms, not of its
/// sum, which cancels in ∂H).
fn close(what: &str, got: &[f32], want: &[f64]) {
    close_with(what, got, want, &[]);
}

/// `close`, plus 1e-5 of `terms[i]`, a bound on element i's largest terms
/// where they cancel (a class's label rows in ∂W and ∂b).
fn close_with(what: &str, got: &[f32], want: &[f64], terms: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let rms = (want.iter().map(|v| v * v).sum::<f64>() / want.len().max(1) as f64).sqrt();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let t = terms.get(i).copied().unwrap_or(0.0);
        assert!(
            agrees(g, w, 1e-5, 1e-6 + 1e-5 * (rms + t)),
            "{what}[{i}]: got {g}, want {w} (rms {rms:e}, terms {t:e})"
        );
    }
}

/// Row n adds ≈ −1·H_{n,k} to ∂W_{yₙ,k} and −1 to ∂b_{yₙ}, terms that
/// largely cancel against the softmax's: their magnitudes per element of
/// ∂W and of ∂b, scaled as the reduction scales the gradient.
fn label_terms(input: &LinearInput, reduction: Reduction) -> (Vec<f64>, Vec<f64>) {
    let (d, v) = (input.dim, input.classifier.len() / input.dim);
    let ignored = input.ignore_index.map(|i| i as u32);
    let kept: Vec<usize> = (0..input.labels.len())
        .filter(|&r| Some(input.labels[r]) != ignored)
        .collect();
    let scale = match reduction {
        Reduction::Mean => 1.0 / kept.len().max(1) as f64,
        _ => 1.0,
    };
    let (mut w, mut b) = (vec![0.0; v * d], vec![0.0; v]);
    for r in kept {
        let y = input.labels[r] as usize;
        b[y] += scale;
        for k in 0..d {
            w[y * d + k] += scale * (input.hidden[r * d + k] as f64).abs();
        }
    }
    (w, b)
}

fn close_value(what: &str, got: &LossValue, want: &[f64]) {
    match got {
        LossValue::Scalar(v) => {
            let w = want[0];
            assert!(
                (v.is_nan() && w.is_nan()) || (v - w).abs() <= 1e-5 * w.abs() + 1e-6,
                "{what}: got {v}, want {w}"
            );
        }
        LossValue::PerSample(v) => close(what, v, want),
    }
}

struct Case {
    n: usize,
    d: usize,
    v: usize,
    hidden: Vec<f32>,
    classifier: Vec<f32>,
    bias: Vec<f32>,
    labels: Vec<u32>,
}

impl Case {
    fn new(rng: &mut StdRng, (n, d, v): (usize, usize, usize)) -> Case {
        let s = 2.0 / (d as f32).sqrt();
        Case {
            n,
            d,
            v,
            hidden: values(rng, n * d, 1.0),
            classifier: values(rng, v * d, s),
            bias: values(rng, v, 0.5),
            labels: (0..n).map(|_| rng.random_range(0..v as u32)).collect(),
        }
    }

    fn input(&self) -> LinearInput<'_> {
        LinearInput::new(&self.hidden, &self.classifier, self.d, &self.labels)
    }
}

/// The options each case runs with.
fn variants<'a>(c: &'a Case, labels: &'a [u32]) -> Vec<(&'static str, LinearInput<'a>)> {
    let plain = c.input();
    let ignoring = LinearInput::new(&c.hidden, &c.classifier, c.d, labels).with_ignore_index(-100);
    vec![
        ("plain", plain),
        ("bias", plain.with_bias(&c.bias)),
        (
            "bias, ignore, smoothing, z-loss",
            ignoring
                .with_bias(&c.bias)
                .with_label_smoothing(0.1)
                .with_z_loss(1e-3),
        ),
    ]
}

/// Every fifth label is −100 (as u32), the ignore index.
fn some_ignored(labels: &[u32]) -> Vec<u32> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &y)| if i % 5 == 2 { -100i32 as u32 } else { y })
        .collect()
}

fn check_engine(engine: &Engine, what: &str, c: &Case) {
    let ignoring = some_ignored(&c.labels);
    for (name, input) in variants(c, &ignoring) {
        for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            let what = format!("{what} {}x{}x{} {name} {}", c.n, c.d, c.v, reduction.name());
            let r = cpu::linear::linear_cross_entropy(&input, reduction).unwrap();
            let (value, dh, dw, db) = (r.value, r.hidden, r.classifier, r.bias);
            let got = engine
                .linear_cross_entropy_and_grad(&input, reduction)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let (terms_w, terms_b) = label_terms(&input, reduction);
            close_value(&format!("{what} value"), &got.value, &value);
            close(&format!("{what} dH"), &got.hidden, &dh);
            close_with(&format!("{what} dW"), &got.classifier, &dw, &terms_w);
            match (&got.bias, input.bias) {
                (Some(g), Some(_)) => close_with(&format!("{what} db"), g, &db, &terms_b),
                (None, None) => {}
                _ => panic!("{what}: a bias gradient without a bias, or none with one"),
            }
            // The value alone is the value of the pass with gradients.
            let alone = engine.linear_cross_entropy(&input, reduction).unwrap();
            assert_eq!(format!("{alone:?}"), format!("{:?}", got.value), "{what}");
            // The logits held whole: the same within the tolerance.
            let whole = input.with_materialised_logits();
            if let Ok(m) = engine.linear_cross_entropy_and_grad(&whole, reduction) {
                close_value(&format!("{what} materialised value"), &m.value, &value);
                close(&format!("{what} materialised dH"), &m.hidden, &dh);
                close_with(
                    &format!("{what} materialised dW"),
                    &m.classifier,
                    &dw,
                    &terms_w,
                );
            } else {
                // Only where N×V values exceed the adapter's largest buffer.
                let bytes = c.n * c.v * 4;
                let max = engine
                    .device_info()
                    .map_or(0, |i| i.max_buffer_bytes as usize);
                assert!(
                    bytes > max,
                    "{what}: materialised failed with {bytes} of {max} bytes"
                );
            }
        }
    }
}

#[test]
fn linear_ce_matches_the_f64_reference_on_odd_shapes() {
    let mut rng = rng("linear ce");
    let cpu_engine = Engine::cpu();
    // 20,000 rows: more than one slice of 16,384 in every row kernel and sum.
    let cases = [(1, 1, 2), (7, 9, 1001), (257, 65, 5003), (20_000, 2, 3)];
    for shape in cases {
        let c = Case::new(&mut rng, shape);
        for engine in engines(&cpu_engine) {
            // The small engine's 4 KiB bindings hold only the smallest H.
            if c.n * c.d * 4
                > engine
                    .device_info()
                    .map_or(usize::MAX, |i| i.max_binding_bytes as usize)
            {
                continue;
            }
            check_engine(engine, &engine.device_name(), &c);
        }
    }
}

/// H, ∂H and the logits' scratch larger than a binding (64 KiB here): the
/// products and the row kernels run a slice of rows at a time.
#[test]
fn linear_ce_past_the_binding_size() {
    let engine = match Engine::gpu_with(lossgpu::GpuOptions {
        max_binding_bytes: Some(1 << 16),
        ..Default::default()
    }) {
        Ok(e) => e,
        Err(e) if common::gpu_required() => panic!("LOSSGPU_REQUIRE_GPU=1 but {e}"),
        Err(_) => return,
    };
    let mut rng = rng("linear ce slices");
    let c = Case::new(&mut rng, (1000, 40, 333));
    check_engine(&engine, "64 KiB bindings", &c);
}

/// A Llama-3-sized vocabulary with a few rows: one chunk on the GPU, 126
/// on the CPU.
#[test]
fn linear_ce_at_a_vocabulary_of_128256() {
    let mut rng = rng("linear ce vocabulary");
    let c = Case::new(&mut rng, (3, 16, 128_256));
    let cpu_engine = Engine::cpu();
    for engine in [Some(&cpu_engine), gpu()].into_iter().flatten() {
        check_engine(engine, &engine.device_name(), &c);
    }
}

/// The reference's gradients are those of its value (central differences in
/// f64 around f32 inputs perturbed by 2^-8 and 2^-9, Richardson-extrapolated).
#[test]
fn the_reference_gradients_are_finite_differences() {
    let mut rng = rng("linear ce fd");
    let c = Case::new(&mut rng, (5, 4, 7));
    let ignoring = some_ignored(&c.labels);
    for (name, input) in variants(&c, &ignoring) {
        let r = cpu::linear::linear_cross_entropy(&input, Reduction::Mean).unwrap();
        let (dh, dw, db) = (r.hidden, r.classifier, r.bias);
        let f = |h: &[f32], w: &[f32], b: &[f32]| {
            let mut i = LinearInput {
                hidden: h,
                classifier: w,
                ..input
            };
            if input.bias.is_some() {
                i = i.with_bias(b);
            }
            cpu::linear::linear_cross_entropy(&i, Reduction::Mean)
                .unwrap()
                .value[0]
        };
        let fd = |which: usize, k: usize| {
            // Divided by the f32 inputs' actual distance: x ± h rounds.
            let central = |h: f32| {
                let mut x = [c.hidden.clone(), c.classifier.clone(), c.bias.clone()];
                let x0 = x[which][k];
                x[which][k] = x0 + h;
                let (up, above) = (f(&x[0], &x[1], &x[2]), x[which][k]);
                x[which][k] = x0 - h;
                let (down, below) = (f(&x[0], &x[1], &x[2]), x[which][k]);
                (up - down) / (above as f64 - below as f64)
            };
            // Richardson: the h² terms cancel (one step alone missed by
            // 1.3e-5 on a gradient of 3e-3, seed 1796480854951794457).
            let h = 2f32.powi(-8);
            (4.0 * central(h / 2.0) - central(h)) / 3.0
        };
        for (which, grad) in [(0, &dh), (1, &dw), (2, &db)] {
            if which == 2 && input.bias.is_none() {
                continue;
            }
            for (k, &ana) in grad.iter().enumerate() {
                let num = fd(which, k);
                assert!(
                    (num - ana).abs() <= 1e-3 * ana.abs() + 1e-5,
                    "{name}: input {which}[{k}]: finite difference {num}, gradient {ana}"
                );
            }
        }
    }
}

/// Fused = materialised: the logits H·Wᵀ + b in f32, then cross-entropy
/// with the same options on the same engine.
#[test]
fn fused_equals_materialised_cross_entropy() {
    let mut rng = rng("linear ce materialised");
    let c = Case::new(&mut rng, (33, 17, 301));
    let cpu_engine = Engine::cpu();
    let logits: Vec<f32> = (0..c.n * c.v)
        .map(|i| {
            let (r, j) = (i / c.v, i % c.v);
            let dot: f64 = (0..c.d)
                .map(|k| c.hidden[r * c.d + k] as f64 * c.classifier[j * c.d + k] as f64)
                .sum();
            (dot + c.bias[j] as f64) as f32
        })
        .collect();
    let ignoring = some_ignored(&c.labels);
    for engine in engines(&cpu_engine) {
        if c.n * c.d * 4
            > engine
                .device_info()
                .map_or(usize::MAX, |i| i.max_binding_bytes as usize)
        {
            continue;
        }
        let fused = LinearInput::new(&c.hidden, &c.classifier, c.d, &ignoring)
            .with_bias(&c.bias)
            .with_ignore_index(-100)
            .with_label_smoothing(0.2);
        let ce = LossInput::classes(&logits, c.v, &ignoring)
            .with_ignore_index(-100)
            .with_label_smoothing(0.2);
        for reduction in [Reduction::Mean, Reduction::Sum] {
            let what = format!("{} {}", engine.device_name(), reduction.name());
            let a = engine
                .linear_cross_entropy(&fused, reduction)
                .unwrap()
                .scalar()
                .unwrap();
            let b = engine
                .loss(&Loss::CrossEntropy, &ce, reduction)
                .unwrap()
                .scalar()
                .unwrap();
            assert!(
                (a - b).abs() <= 1e-5 * b.abs(),
                "{what}: fused {a}, materialised {b}"
            );
        }
    }
}

/// Ignored rows add nothing: the same as the kept rows alone, and their
/// ∂H rows are 0.
#[test]
fn ignored_rows_contribute_nothing() {
    let mut rng = rng("linear ce ignore");
    let c = Case::new(&mut rng, (20, 8, 50));
    let ignoring = some_ignored(&c.labels);
    let kept: Vec<usize> = (0..c.n).filter(|&i| i % 5 != 2).collect();
    let hidden: Vec<f32> = kept
        .iter()
        .flat_map(|&i| c.hidden[i * c.d..(i + 1) * c.d].to_vec())
        .collect();
    let labels: Vec<u32> = kept.iter().map(|&i| c.labels[i]).collect();
    let cpu_engine = Engine::cpu();
    for engine in engines(&cpu_engine) {
        let what = engine.device_name();
        let all =
            LinearInput::new(&c.hidden, &c.classifier, c.d, &ignoring).with_ignore_index(-100);
        let some = LinearInput::new(&hidden, &c.classifier, c.d, &labels);
        let a = engine
            .linear_cross_entropy_and_grad(&all, Reduction::Mean)
            .unwrap();
        let b = engine
            .linear_cross_entropy_and_grad(&some, Reduction::Mean)
            .unwrap();
        let (x, y) = (a.value.scalar().unwrap(), b.value.scalar().unwrap());
        assert!((x - y).abs() <= 1e-6 * y.abs(), "{what}: {x} vs {y}");
        for i in (0..c.n).filter(|i| i % 5 == 2) {
            assert!(
                a.hidden[i * c.d..(i + 1) * c.d].iter().all(|&g| g == 0.0),
                "{what}: row {i}"
            );
        }
        let want: Vec<f64> = b.classifier.iter().map(|&v| v as f64).collect();
        let (terms, _) = label_terms(&some, Reduction::Mean);
        close_with(&format!("{what} dW"), &a.classifier, &want, &terms);
        // Every row ignored: NaN for mean, 0 for sum, as PyTorch.
        let none = vec![-100i32 as u32; c.n];
        let all = LinearInput::new(&c.hidden, &c.classifier, c.d, &none).with_ignore_index(-100);
        assert!(engine
            .linear_cross_entropy(&all, Reduction::Mean)
            .unwrap()
            .scalar()
            .unwrap()
            .is_nan());
        assert_eq!(
            engine
                .linear_cross_entropy(&all, Reduction::Sum)
                .unwrap()
                .scalar(),
            Some(0.0)
        );
    }
}

/// bf16 inputs give the bits of their widened f32 values; the result is the
/// same every run.
#[test]
fn half_inputs_and_determinism() {
    let mut rng = rng("linear ce half");
    let c = Case::new(&mut rng, (19, 24, 777));
    let half = |v: &[f32]| -> Vec<bf16> { v.iter().map(|&x| bf16::from_f32(x)).collect() };
    let (h, w, b) = (half(&c.hidden), half(&c.classifier), half(&c.bias));
    let wide = |v: &[bf16]| -> Vec<f32> { v.iter().map(|x| x.to_f32()).collect() };
    let (hw, ww, bw) = (wide(&h), wide(&w), wide(&b));
    let cpu_engine = Engine::cpu();
    for engine in engines(&cpu_engine) {
        if c.n * c.d * 4
            > engine
                .device_info()
                .map_or(usize::MAX, |i| i.max_binding_bytes as usize)
        {
            continue;
        }
        let what = engine.device_name();
        let halves = LinearInput::new(&h, &w, c.d, &c.labels).with_bias(&b);
        let widened = LinearInput::new(&hw, &ww, c.d, &c.labels).with_bias(&bw);
        let x = engine
            .linear_cross_entropy_and_grad(&halves, Reduction::Mean)
            .unwrap();
        let y = engine
            .linear_cross_entropy_and_grad(&widened, Reduction::Mean)
            .unwrap();
        assert_eq!(x, y, "{what}: bf16 against its f32 values");
        let again = engine
            .linear_cross_entropy_and_grad(&widened, Reduction::Mean)
            .unwrap();
        assert_eq!(again, y, "{what}: run to run");
        let as_half = engine
            .linear_cross_entropy_and_grad_as::<_, bf16>(&halves, Reduction::Mean)
            .unwrap();
        let rounded: Vec<bf16> = y.hidden.iter().map(|&v| bf16::from_f32(v)).collect();
        assert_eq!(
            as_half.hidden, rounded,
            "{what}: bf16 gradients are the rounded f32 ones"
        );
    }
}

/// Logits of ±1e4 (hidden values of 100 against classifier rows of 100):
/// finite, as the reference.
#[test]
fn extreme_logits_stay_finite() {
    let (n, d, v) = (3, 2, 5);
    let hidden = [100.0f32, 0.0, -100.0, 1.0, 0.5, 100.0];
    let classifier = [
        100.0f32, 0.0, -100.0, 0.0, 0.0, 100.0, 1.0, 1.0, -50.0, 50.0,
    ];
    let labels = [1u32, 0, 4];
    let input = LinearInput::new(&hidden, &classifier, d, &labels);
    let r = cpu::linear::linear_cross_entropy(&input, Reduction::Sum).unwrap();
    let (want, dh, dw) = (r.value, r.hidden, r.classifier);
    let cpu_engine = Engine::cpu();
    for engine in engines(&cpu_engine) {
        let what = engine.device_name();
        let got = engine
            .linear_cross_entropy_and_grad(&input, Reduction::Sum)
            .unwrap();
        close_value(&format!("{what} value"), &got.value, &want);
        close(&format!("{what} dH"), &got.hidden, &dh);
        close(&format!("{what} dW"), &got.classifier, &dw);
        assert_eq!((n, v), (labels.len(), classifier.len() / d));
    }
}

#[test]
fn bad_input_is_named() {
    let engine = Engine::cpu();
    let (h, w) = ([1.0f32; 6], [1.0f32; 8]);
    let labels = [0u32, 3, 4];
    let input = LinearInput::new(&h, &w, 2, &labels);
    assert_err(
        engine.linear_cross_entropy(&input, Reduction::Mean),
        "labels[2] = 4",
    );
    let short = LinearInput::new(&h, &w, 2, &labels[..2]);
    assert_err(
        engine.linear_cross_entropy(&short, Reduction::Mean),
        "2 labels for 3 rows",
    );
    let odd = LinearInput::new(&h[..5], &w, 2, &labels);
    assert_err(
        engine.linear_cross_entropy(&odd, Reduction::Mean),
        "hidden holds 5 values",
    );
    let ok = [0u32, 1, 2];
    let input = LinearInput::new(&h, &w, 2, &ok);
    let b = [0.0f32; 3];
    assert_err(
        engine.linear_cross_entropy(&input.with_bias(&b), Reduction::Mean),
        "bias holds 3",
    );
    assert_err(
        engine.linear_cross_entropy(&input.with_label_smoothing(1.5), Reduction::Mean),
        "label smoothing",
    );
    assert_err(
        engine.linear_cross_entropy(&input, Reduction::BatchMean),
        "batchmean",
    );
}
