//! Engine::loss_and_grad_in_place: the gradient written over the resident
//! logits gives the bits of loss_and_grad_tensor's gradient in the same
//! type (f32, f16, bf16; row and pointwise losses; every reduction; odd
//! widths whose words of halves straddle rows; chunked engines), holds no
//! second tensor of the logits' size, and leaves the logits untouched when
//! an input is invalid.

mod common;

use common::{assert_err, data, engines, gpu_required, rng};
use lossgpu::{
    bf16, f16, Element, Engine, Float, GpuOptions, Loss, Reduction, Tensor, TensorTarget,
};
use rand::Rng;

fn same<F: Float>(what: &str, got: &[F], want: &[F]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let (x, y) = (a.to_f32(), b.to_f32());
        assert!(
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
            "{what}[{i}]: {x} in place, {y} from loss_and_grad_tensor"
        );
    }
}

/// In place against loss_and_grad_tensor_as on fresh copies of `values`.
fn check<F: Float + Element>(
    engine: &Engine,
    what: &str,
    loss: &Loss,
    (values, cols): (&[F], usize),
    target: TensorTarget<F>,
) {
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let what = format!("{what} {} {}", loss.name(), reduction.name());
        let pred = engine.upload_rows(values, cols).unwrap();
        let (value, grad) = engine
            .loss_and_grad_tensor_as::<F, F>(loss, &pred, target, reduction)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut logits = engine.upload_rows(values, cols).unwrap();
        let got = engine
            .loss_and_grad_in_place(loss, &mut logits, target, reduction)
            .unwrap_or_else(|e| panic!("{what} in place: {e}"));
        assert_eq!(format!("{got:?}"), format!("{value:?}"), "{what}: value");
        same(
            &what,
            &engine.read(&logits).unwrap(),
            &engine.read(&grad).unwrap(),
        );
    }
}

fn as_type<F: Float>(v: &[f32]) -> Vec<F> {
    v.iter().map(|&x| F::from_f32(x)).collect()
}

fn check_type<F: Float + Element>(dtype: &str) {
    let mut rng = rng(&format!("in place {dtype}"));
    let cpu_engine = Engine::cpu();
    for engine in engines(&cpu_engine) {
        let name = format!("{dtype} {}", engine.device_name());
        for (rows, cols) in [(1, 3), (9, 7), (401, 5), (5, 300)] {
            let what = format!("{name} {rows}x{cols}");
            let z = as_type::<F>(&data(&mut rng, rows * cols));
            let classes: Vec<u32> = (0..rows)
                .map(|_| rng.random_range(0..cols as u32))
                .collect();
            let probs: Vec<f32> = (0..rows * cols).map(|_| rng.random::<f32>()).collect();
            let q = as_type::<F>(&probs);
            let ct = engine.upload_classes(&classes).unwrap();
            let qt = engine.upload_rows(&q, cols).unwrap();
            let zt = engine.upload_rows(&z, cols).unwrap();
            for loss in [
                Loss::CrossEntropy,
                Loss::Nll,
                Loss::MultiMargin {
                    margin: 1.0,
                    power: 2,
                },
            ] {
                check(engine, &what, &loss, (&z, cols), (&ct).into());
            }
            check(engine, &what, &Loss::CrossEntropy, (&z, cols), (&qt).into());
            check(engine, &what, &Loss::KlDiv, (&q, cols), (&qt).into());
            check(
                engine,
                &what,
                &Loss::Entropy,
                (&q, cols),
                TensorTarget::None,
            );
            // Pointwise, over all n·m values.
            let y = as_type::<F>(
                &probs
                    .iter()
                    .map(|p| (p > &0.5) as u8 as f32)
                    .collect::<Vec<_>>(),
            );
            let yt = engine.upload(&y).unwrap();
            check(engine, &what, &Loss::BceLogits, (&z, 1), (&yt).into());
            check(
                engine,
                &what,
                &Loss::Huber { delta: 0.5 },
                (&z, 1),
                (&zt).into(),
            );
        }
    }
}

#[test]
fn f32_gradients_in_place_are_those_of_a_new_tensor() {
    check_type::<f32>("f32");
}

#[test]
fn bf16_gradients_in_place_are_those_of_a_new_tensor() {
    check_type::<bf16>("bf16");
}

#[test]
fn f16_gradients_in_place_are_those_of_a_new_tensor() {
    check_type::<f16>("f16");
}

/// A bad class index or a value outside its domain: the error names it and
/// the logits keep their values.
#[test]
fn an_invalid_input_leaves_the_logits_as_they_were() {
    let cpu_engine = Engine::cpu();
    for engine in engines(&cpu_engine) {
        let name = engine.device_name();
        let z = [0.5f32, -1.0, 2.0, 0.25, 0.0, 1.5];
        let mut logits = engine.upload_rows(&z, 3).unwrap();
        let classes = engine.upload_classes(&[1, 3]).unwrap();
        assert_err(
            engine.loss_and_grad_in_place(
                &Loss::CrossEntropy,
                &mut logits,
                &classes,
                Reduction::Mean,
            ),
            "target[1] = 3",
        );
        assert_eq!(engine.read(&logits).unwrap(), z, "{name}: logits kept");
        let mut q = engine.upload_rows(&[0.5f32, 0.5, 0.25, 1.5], 2).unwrap();
        let t = engine.upload_rows(&[0.5f32, 0.5, 0.5, 0.5], 2).unwrap();
        assert_err(
            engine.loss_and_grad_in_place(&Loss::KlDiv, &mut q, &t, Reduction::Sum),
            "1.5",
        );
        assert_eq!(
            engine.read(&q).unwrap(),
            [0.5, 0.5, 0.25, 1.5],
            "{name}: kept"
        );
        let mut p = engine.upload(&[0.5f32, 2.0, 0.25]).unwrap();
        let y = engine.upload(&[1.0f32, 0.0, 1.0]).unwrap();
        assert_err(
            engine.loss_and_grad_in_place(&Loss::Bce, &mut p, &y, Reduction::Mean),
            "2",
        );
        assert_eq!(engine.read(&p).unwrap(), [0.5, 2.0, 0.25], "{name}: kept");
    }
}

/// The point of writing in place: a step over resident logits holds the
/// logits and small per-row state, not a second tensor of their size.
#[test]
fn in_place_holds_no_second_tensor_of_the_logits_size() {
    let engine = match Engine::gpu_with(GpuOptions::default()) {
        Ok(e) => e,
        Err(e) if gpu_required() => panic!("LOSSGPU_REQUIRE_GPU=1 but no GPU engine: {e}"),
        Err(_) => return,
    };
    let mut rng = rng("in place memory");
    let (rows, cols) = (64, 5_003);
    let z = data(&mut rng, rows * cols);
    let classes: Vec<u32> = (0..rows)
        .map(|_| rng.random_range(0..cols as u32))
        .collect();
    let labels = engine.upload_classes(&classes).unwrap();
    let logits_bytes = (rows * cols * 4) as u64;
    let step = |in_place: bool| -> u64 {
        let mut logits = engine.upload_rows(&z, cols).unwrap();
        let base = engine.device_memory().current_bytes;
        engine.reset_peak_device_memory();
        if in_place {
            engine
                .loss_and_grad_in_place(&Loss::CrossEntropy, &mut logits, &labels, Reduction::Mean)
                .unwrap();
        } else {
            let (_, g): (_, Tensor) = engine
                .loss_and_grad_tensor(&Loss::CrossEntropy, &logits, &labels, Reduction::Mean)
                .unwrap();
            drop(g);
        }
        engine.device_memory().peak_bytes - base
    };
    let (apart, inside) = (step(false), step(true));
    assert!(apart >= logits_bytes, "a new gradient: {apart} extra bytes");
    assert!(
        inside < logits_bytes / 50,
        "in place: {inside} extra bytes against {logits_bytes} of logits"
    );
}

/// With the options a language model's step takes (padding rows labelled
/// −100 left out, label smoothing, a z-loss, class weights), in place gives
/// the bits of the same call on host slices; so do a new gradient tensor
/// and the value alone.
fn check_options<F: Float + Element>(dtype: &str) {
    use lossgpu::{LossInput, LossOptions};
    let mut rng = rng(&format!("in place options {dtype}"));
    let cpu_engine = Engine::cpu();
    let (rows, cols) = (37, 11);
    let z = as_type::<F>(&data(&mut rng, rows * cols));
    let labels: Vec<u32> = (0..rows)
        .map(|i| {
            if i % 4 == 1 {
                -100i32 as u32
            } else {
                rng.random_range(0..cols as u32)
            }
        })
        .collect();
    let class_weights: Vec<f32> = (0..cols).map(|j| 0.5 + (j % 3) as f32 * 0.25).collect();
    let all = [
        LossOptions {
            ignore_index: Some(-100),
            ..Default::default()
        },
        LossOptions {
            ignore_index: Some(-100),
            label_smoothing: 0.1,
            z_loss: 1e-3,
            class_weights: Some(&class_weights),
            ..Default::default()
        },
    ];
    for engine in engines(&cpu_engine) {
        for (k, options) in all.iter().enumerate() {
            for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
                let what = format!(
                    "{dtype} {} options {k} {}",
                    engine.device_name(),
                    reduction.name()
                );
                let mut host = LossInput::classes(&z, cols, &labels);
                host.options = *options;
                let (value, grad) = engine
                    .loss_and_grad_as::<F, F>(&Loss::CrossEntropy, &host, reduction)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let mut logits = engine.upload_rows(&z, cols).unwrap();
                let classes = engine.upload_classes(&labels).unwrap();
                let got = engine
                    .loss_and_grad_in_place_with(
                        &Loss::CrossEntropy,
                        &mut logits,
                        &classes,
                        *options,
                        reduction,
                    )
                    .unwrap_or_else(|e| panic!("{what} in place: {e}"));
                assert_eq!(format!("{got:?}"), format!("{value:?}"), "{what}: value");
                same(&what, &engine.read(&logits).unwrap(), &grad);
                // A new gradient tensor, with the same options.
                let fresh = engine.upload_rows(&z, cols).unwrap();
                let (v2, g2) = engine
                    .loss_and_grad_tensor_with(
                        &Loss::CrossEntropy,
                        &fresh,
                        &classes,
                        *options,
                        reduction,
                    )
                    .unwrap();
                assert_eq!(
                    format!("{v2:?}"),
                    format!("{value:?}"),
                    "{what}: tensor value"
                );
                same(&format!("{what} tensor"), &engine.read(&g2).unwrap(), &grad);
                // The value alone, with the same options.
                let alone = engine
                    .loss_tensor_with(&Loss::CrossEntropy, &fresh, &classes, *options, reduction)
                    .unwrap();
                let host_alone = engine.loss(&Loss::CrossEntropy, &host, reduction).unwrap();
                assert_eq!(
                    format!("{alone:?}"),
                    format!("{host_alone:?}"),
                    "{what}: the value alone"
                );
                let kept = engine.read(&logits).unwrap();
                for r in (0..rows).filter(|r| r % 4 == 1) {
                    assert!(
                        kept[r * cols..(r + 1) * cols]
                            .iter()
                            .all(|g| g.to_f32() == 0.0),
                        "{what}: row {r}"
                    );
                }
            }
        }
    }
}

#[test]
fn options_in_place_give_the_bits_of_host_slices() {
    check_options::<f32>("f32");
    check_options::<bf16>("bf16");
}
