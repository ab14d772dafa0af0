//! Engine::device_memory: the bytes of the buffers an engine holds, now and
//! at most. Every operation gives back what it allocated (current returns to
//! where it was), a resident result holds exactly its own padded bytes, and
//! the peak of a call covers its inputs and outputs.

mod common;

use common::{data, gpu_required, rng};
use lossgpu::{
    bf16, Activation, Clip, Engine, GpuOptions, Loss, LossInput, Pass, Reduction, Regularizer,
};

/// An engine of its own: the counters are per engine, and the tests of
/// this file run in parallel.
fn own_gpu(options: GpuOptions) -> Option<Engine> {
    match Engine::gpu_with(options) {
        Ok(e) => Some(e),
        Err(e) if gpu_required() => panic!("LOSSGPU_REQUIRE_GPU=1 but no GPU engine: {e}"),
        Err(_) => None,
    }
}

fn gpu() -> Option<Engine> {
    own_gpu(GpuOptions::default())
}

/// Bindings of 4 KiB: reductions stream, elementwise ops chunk.
fn gpu_small() -> Option<Engine> {
    own_gpu(GpuOptions {
        max_binding_bytes: Some(4096),
        ..GpuOptions::default()
    })
}

/// Padded bytes of n values of `size` bytes: whole vec4s of words.
fn padded(n: usize, size: usize) -> u64 {
    ((n * size).div_ceil(16) * 16) as u64
}

#[test]
fn the_cpu_engine_holds_no_device_memory() {
    let engine = Engine::cpu();
    let _t = engine.upload(&[1.0f32; 100]).unwrap();
    assert_eq!(engine.device_memory(), lossgpu::DeviceMemory::default());
    engine.reset_peak_device_memory();
}

/// Runs `op` and checks that the engine holds what it held before, and
/// that the peak of the call reached at least `at_least` bytes above it.
fn gives_back(engine: &Engine, what: &str, at_least: u64, op: impl FnOnce()) {
    let before = engine.device_memory().current_bytes;
    engine.reset_peak_device_memory();
    op();
    let after = engine.device_memory();
    assert_eq!(after.current_bytes, before, "{what}: bytes left held");
    assert!(
        after.peak_bytes >= before + at_least,
        "{what}: peak {} below {} + {at_least}",
        after.peak_bytes,
        before
    );
}

#[test]
fn every_operation_gives_back_what_it_allocated() {
    let mut rng = rng("memory");
    // The small engine streams reductions through chunk-sized buffers: its
    // peaks are bounded, so only what it gives back is checked.
    let engines = [(gpu(), 1), (gpu_small(), 0)];
    for (engine, peaks) in engines.into_iter().filter_map(|(e, k)| Some((e?, k))) {
        let engine = &engine;
        for n in [7, 70_001] {
            let (p, t) = (data(&mut rng, n), data(&mut rng, n));
            let y: Vec<f32> = t.iter().map(|v| (v > &0.0) as u8 as f32).collect();
            let input = LossInput::new(&p, &t);
            let f32s = padded(n, 4) * peaks;
            let e = engine;
            gives_back(e, "mse", 2 * f32s, || {
                e.loss(&Loss::Mse, &input, Reduction::Mean).unwrap();
            });
            gives_back(e, "mse grad", 3 * f32s, || {
                e.loss_and_grad(&Loss::Mse, &input, Reduction::Mean)
                    .unwrap();
            });
            gives_back(e, "bce-logits none", 3 * f32s, || {
                let input = LossInput::new(&p, &y);
                e.loss(&Loss::BceLogits, &input, Reduction::None).unwrap();
            });
            gives_back(e, "activation", 2 * f32s, || {
                e.activation(&Activation::Tanh, &p).unwrap();
            });
            gives_back(e, "metrics", 2 * f32s, || {
                e.regression_metrics(&input, 1.0, 0.5).unwrap();
            });
            gives_back(e, "grad stats", f32s, || {
                e.grad_stats(&p, 1e-6).unwrap();
            });
            gives_back(e, "clip", f32s, || {
                e.clip(&p, Clip::Norm(1.0)).unwrap();
            });
            gives_back(e, "objective", 2 * f32s, || {
                let reg = Regularizer::L2(0.1);
                e.objective(&Loss::Mse, &input, Reduction::Mean, &p, reg)
                    .unwrap();
            });
            gives_back(e, "batch", 2 * f32s, || {
                let items = [(Loss::Mse, input), (Loss::Mae, input)];
                e.loss_batch(&items, Reduction::Sum).unwrap();
            });
            let cols = 7;
            let rows = n / cols;
            let classes: Vec<u32> = (0..rows as u32).map(|i| i % cols as u32).collect();
            let logits = LossInput::classes(&p[..rows * cols], cols, &classes);
            gives_back(
                e,
                "cross-entropy grad",
                2 * padded(rows * cols, 4) * peaks,
                || {
                    e.loss_and_grad(&Loss::CrossEntropy, &logits, Reduction::Mean)
                        .unwrap();
                },
            );
            // An error gives back too.
            gives_back(e, "an error", 0, || {
                let bad = LossInput::new(&p, &p);
                assert!(e.loss(&Loss::Bce, &bad, Reduction::Mean).is_err());
            });
        }
    }
}

#[test]
fn resident_tensors_hold_their_padded_bytes() {
    let Some(engine) = gpu() else { return };
    let engine = &engine;
    let mut rng = rng("memory resident");
    let n = 1_001;
    let p = data(&mut rng, n);
    let base = engine.device_memory().current_bytes;
    let t = engine.upload(&p).unwrap();
    assert_eq!(engine.device_memory().current_bytes, base + padded(n, 4));
    let h: Vec<bf16> = p.iter().map(|&v| bf16::from_f32(v)).collect();
    let th = engine.upload(&h).unwrap();
    let both = base + padded(n, 4) + padded(n, 2);
    assert_eq!(
        engine.device_memory().current_bytes,
        both,
        "bf16 at 2 bytes"
    );
    // A resident result holds its own bytes and nothing else.
    let y = engine
        .activation_tensor(&Activation::Relu, Pass::Forward, &th, None)
        .unwrap();
    assert_eq!(engine.device_memory().current_bytes, both + padded(n, 4));
    let yh: lossgpu::Tensor<bf16> = engine
        .activation_tensor_as(&Activation::Relu, Pass::Forward, &th, None)
        .unwrap();
    let all = both + padded(n, 4) + padded(n, 2);
    assert_eq!(engine.device_memory().current_bytes, all, "a bf16 result");
    let g = engine
        .loss_grad_tensor(&Loss::Mse, &t, &t, Reduction::Mean)
        .unwrap();
    assert_eq!(engine.device_memory().current_bytes, all + padded(n, 4));
    drop((t, th, y, yh, g));
    assert_eq!(engine.device_memory().current_bytes, base, "all dropped");
    assert!(engine.device_memory().peak_bytes >= all + padded(n, 4));
    engine.reset_peak_device_memory();
    assert_eq!(engine.device_memory().peak_bytes, base);
}

/// A buffer the caller made is the caller's: not counted, and not taken
/// off when its tensor drops.
#[test]
fn a_caller_s_buffer_is_not_counted() {
    let Some(engine) = gpu() else { return };
    let device = engine.wgpu_device().unwrap();
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 4096,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let base = engine.device_memory().current_bytes;
    let t = engine.tensor_from_buffer(buffer, 1024).unwrap();
    assert_eq!(engine.device_memory().current_bytes, base);
    drop(t);
    assert_eq!(engine.device_memory().current_bytes, base);
}

/// A row loss over host slices of many slabs (gpu_small's are 4096
/// values) holds one slab's inputs and gradient at a time, not the whole.
#[test]
fn row_losses_over_host_slices_hold_one_slab() {
    let Some(engine) = gpu_small() else { return };
    let mut rng = rng("memory slabs");
    let (rows, cols) = (4001, 33);
    let p = data(&mut rng, rows * cols);
    let classes: Vec<u32> = (0..rows as u32).map(|i| i % cols as u32).collect();
    let input = LossInput::classes(&p, cols, &classes);
    let base = engine.device_memory().current_bytes;
    engine.reset_peak_device_memory();
    let (_, grad) = engine
        .loss_and_grad(&Loss::CrossEntropy, &input, Reduction::Mean)
        .unwrap();
    assert_eq!(grad.len(), rows * cols);
    let peak = engine.device_memory().peak_bytes - base;
    let whole = padded(rows * cols, 4);
    assert!(
        peak * 8 < whole,
        "a peak of {peak} bytes for {whole} bytes of logits"
    );
    assert_eq!(engine.device_memory().current_bytes, base);
}
