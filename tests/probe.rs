//! The adapter-ceiling probes of `lossgpu bench`: the read kernel sums what
//! the CPU sums, the copy copies, and a CPU engine refuses both.

mod common;

use common::{assert_err, gpu, gpu_small, rng};
use lossgpu::probe::Probe;
use lossgpu::{Engine, Error};
use rand::Rng;

fn sum(x: &[f32]) -> f64 {
    x.iter().map(|&v| v as f64).sum()
}

#[test]
fn the_read_kernel_sums_every_value_once() {
    let mut rng = rng("probe read");
    // gpu_small caps bindings at 4 KiB, so the chunked path runs too.
    for engine in [gpu(), gpu_small()].into_iter().flatten() {
        for n in [1, 3, 4, 5, 255, 1023, 1024, 4097, 65_537, 1_000_003] {
            // Positive values: a plain f32 sum then stays within ~1e-6.
            let x: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
            let y: Vec<f32> = (0..n).map(|_| 1.0 + rng.random::<f32>()).collect();
            let (xt, yt) = (engine.upload(&x).unwrap(), engine.upload(&y).unwrap());
            let one = Probe::new(engine).unwrap().read(&[&xt]).unwrap();
            let want = sum(&x);
            assert!(
                (one - want).abs() <= 1e-5 * want,
                "n={n}: one tensor {one} vs {want}"
            );
            let two = Probe::new(engine).unwrap().read(&[&xt, &yt]).unwrap();
            let want = sum(&x) + sum(&y);
            assert!(
                (two - want).abs() <= 1e-5 * want,
                "n={n}: two tensors {two} vs {want}"
            );
        }
    }
}

#[test]
fn the_read_kernel_ignores_what_lies_past_the_tensor() {
    // A caller's buffer may hold anything after the last value: a tensor of
    // 5 values over a buffer of 8 must not count the other three.
    let Some(engine) = gpu() else { return };
    let device = engine.wgpu_device().unwrap();
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("eight values"),
        size: 32,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: true,
    });
    let values = [1.0f32, 2.0, 3.0, 4.0, 5.0, 100.0, 100.0, 100.0];
    buffer
        .slice(..)
        .get_mapped_range_mut()
        .unwrap()
        .copy_from_slice(bytemuck::cast_slice(&values));
    buffer.unmap();
    let t = engine.tensor_from_buffer(buffer, 5).unwrap();
    assert_eq!(Probe::new(engine).unwrap().read(&[&t]).unwrap(), 15.0);
    assert_eq!(Probe::new(engine).unwrap().read(&[&t, &t]).unwrap(), 30.0);
}

#[test]
fn the_copy_probe_copies_each_tensor() {
    let mut rng = rng("probe copy");
    for engine in [gpu(), gpu_small()].into_iter().flatten() {
        for n in [1, 7, 65_537] {
            let x: Vec<f32> = (0..n).map(|_| rng.random::<f32>() - 0.5).collect();
            let y: Vec<f32> = (0..n + 3).map(|_| rng.random::<f32>()).collect();
            let (xt, yt) = (engine.upload(&x).unwrap(), engine.upload(&y).unwrap());
            let copies = Probe::new(engine).unwrap().copy(&[&xt, &yt]).unwrap();
            assert_eq!(copies.len(), 2);
            assert_eq!(copies[0].len(), n);
            assert_eq!(engine.read(&copies[0]).unwrap(), x);
            assert_eq!(engine.read(&copies[1]).unwrap(), y);
        }
        engine.synchronize().unwrap();
    }
}

#[test]
fn probes_need_a_gpu_engine_and_sane_arguments() {
    let cpu = Engine::cpu();
    let t = cpu.upload(&[1.0, 2.0]).unwrap();
    let e = Probe::new(&cpu).map(|_| ()).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput(m) if m.contains("measures a GPU adapter")),
        "{e}"
    );
    // Waiting on the CPU is a no-op.
    cpu.synchronize().unwrap();
    let Some(engine) = gpu() else { return };
    let a = engine.upload(&[1.0, 2.0]).unwrap();
    let b = engine.upload(&[1.0, 2.0, 3.0]).unwrap();
    let probe = Probe::new(engine).unwrap();
    assert_err(probe.read(&[&a, &b]), "must be equally long");
    assert_err(probe.read(&[]), "one or two tensors, not 0");
    assert_err(probe.read(&[&a, &a, &a]), "one or two tensors, not 3");
    assert_err(probe.read(&[&t]), "a tensor of a CPU engine");
}
