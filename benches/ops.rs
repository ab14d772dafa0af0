//! `cargo bench`: the same operations on the GPU (end to end from host
//! slices, and resident) and on the CPU backend, at a few sizes, with the
//! adapter's read and copy ceilings next to them. Compare the ratios within
//! one run; the machines here are shared.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lossgpu::probe::Probe;
use lossgpu::{Activation, Engine, Loss, LossInput, Pass, Reduction};

fn data(n: usize) -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 2001) as f32 * 0.004 - 4.0)
        .collect();
    let t: Vec<f32> = (0..n)
        .map(|i| ((i * 104_729) % 997) as f32 * 0.002 - 1.0)
        .collect();
    (x, t)
}

fn engines() -> Vec<(&'static str, Engine)> {
    let mut list = vec![("cpu", Engine::cpu())];
    match Engine::gpu() {
        Ok(g) => list.push(("gpu", g)),
        Err(e) => eprintln!("no GPU adapter ({e}): timing the CPU only"),
    }
    list
}

fn bench(c: &mut Criterion) {
    let engines = engines();
    for n in [1 << 16, 1 << 20] {
        let (x, t) = data(n);
        let mut group = c.benchmark_group(format!("n={n}"));
        group.sample_size(10);
        group.throughput(Throughput::Bytes((8 * n) as u64));
        for (name, engine) in &engines {
            group.bench_function(BenchmarkId::new("mse", name), |b| {
                b.iter(|| {
                    engine
                        .loss(&Loss::Mse, &LossInput::new(&x, &t), Reduction::Mean)
                        .unwrap()
                })
            });
            group.bench_function(BenchmarkId::new("huber grad", name), |b| {
                b.iter(|| {
                    engine
                        .loss_grad(
                            &Loss::Huber { delta: 1.0 },
                            &LossInput::new(&x, &t),
                            Reduction::Mean,
                        )
                        .unwrap()
                })
            });
            // A training step's value and gradient: one call against two.
            let huber = Loss::Huber { delta: 1.0 };
            group.bench_function(BenchmarkId::new("huber value+grad, one call", name), |b| {
                b.iter(|| {
                    engine
                        .loss_and_grad(&huber, &LossInput::new(&x, &t), Reduction::Mean)
                        .unwrap()
                })
            });
            group.bench_function(BenchmarkId::new("huber value+grad, two calls", name), |b| {
                b.iter(|| {
                    let input = LossInput::new(&x, &t);
                    let v = engine.loss(&huber, &input, Reduction::Mean).unwrap();
                    (
                        v,
                        engine.loss_grad(&huber, &input, Reduction::Mean).unwrap(),
                    )
                })
            });
            group.bench_function(BenchmarkId::new("sigmoid", name), |b| {
                b.iter(|| engine.activation(&Activation::Sigmoid, &x).unwrap())
            });
            // Resident: inputs uploaded once, only the scalar comes back.
            let (xt, tt) = (engine.upload(&x).unwrap(), engine.upload(&t).unwrap());
            group.bench_function(BenchmarkId::new("mse resident", name), |b| {
                b.iter(|| {
                    engine
                        .loss_tensor(&Loss::Mse, &xt, &tt, Reduction::Mean)
                        .unwrap()
                })
            });
            // activation_tensor returns once submitted: wait for the kernel.
            group.bench_function(BenchmarkId::new("sigmoid resident", name), |b| {
                b.iter(|| {
                    let y = engine
                        .activation_tensor(&Activation::Sigmoid, Pass::Forward, &xt, None)
                        .unwrap();
                    engine.synchronize().unwrap();
                    y
                })
            });
            // The adapter's ceilings on the same two tensors (GPU only):
            // the minimal read kernel and a buffer-to-buffer copy.
            if let Ok(probe) = Probe::new(engine) {
                group.bench_function(BenchmarkId::new("read ceiling", name), |b| {
                    b.iter(|| probe.read(&[&xt, &tt]).unwrap())
                });
                group.bench_function(BenchmarkId::new("copy ceiling", name), |b| {
                    b.iter(|| probe.copy(&[&xt, &tt]).unwrap())
                });
            }
        }
        group.finish();
    }
}

// No plots: criterion's charts would need a registered font.
/// 64 losses of 1024 values: one submission for all, or one call each.
fn batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("64 losses of n=1024");
    group.sample_size(10);
    let data: Vec<(Vec<f32>, Vec<f32>)> = (0..64).map(|_| data(1024)).collect();
    let items: Vec<(Loss, LossInput)> = data
        .iter()
        .map(|(x, t)| (Loss::Mse, LossInput::new(x, t)))
        .collect();
    for (name, engine) in &engines() {
        group.bench_function(BenchmarkId::new("batch", name), |b| {
            b.iter(|| engine.loss_batch(&items, Reduction::Mean).unwrap())
        });
        group.bench_function(BenchmarkId::new("separate", name), |b| {
            b.iter(|| {
                for (loss, input) in &items {
                    engine.loss(loss, input, Reduction::Mean).unwrap();
                }
            })
        });
    }
    group.finish();
}

/// The CPU backend on the losses, options and activations that took the
/// f64 reference before its f32 loops covered them: 2^20 values, rows of
/// m = 10 (`cargo bench --bench ops -- cpu-coverage`).
fn cpu_coverage(c: &mut Criterion) {
    let mut group = c.benchmark_group("cpu-coverage");
    group.sample_size(20);
    let (e, m, n) = (Engine::cpu(), 10, (1 << 20) / 10 * 10);
    let (x, t) = data(n);
    let rows = n / m;
    let classes: Vec<u32> = (0..rows).map(|i| ((i * 7) % m) as u32).collect();
    let q: Vec<f32> = t.iter().map(|v| v.abs() * 0.9 + 0.05).collect();
    let lq: Vec<f32> = q.iter().map(|v| v.ln()).collect();
    let unit: Vec<f32> = t.iter().map(|v| v.abs()).collect();
    let sign: Vec<f32> = t
        .iter()
        .map(|v| if *v > 0.0 { 1.0 } else { -1.0 })
        .collect();
    let cw: Vec<f32> = (0..m).map(|k| 0.5 + k as f32 / 10.0).collect();
    let pw: Vec<f32> = (0..m).map(|k| 0.5 + k as f32).collect();
    let mm = Loss::MultiMargin {
        margin: 1.0,
        power: 1,
    };
    let cases: Vec<(&str, Loss, LossInput)> = vec![
        ("nll", Loss::Nll, LossInput::classes(&lq, m, &classes)),
        (
            "nll, class weights and ignore index",
            Loss::Nll,
            LossInput::classes(&lq, m, &classes)
                .with_class_weights(&cw)
                .with_ignore_index(3),
        ),
        ("multi-margin", mm, LossInput::classes(&x, m, &classes)),
        (
            "zero-one rows",
            Loss::ZeroOne,
            LossInput::classes(&x, m, &classes),
        ),
        (
            "kl-div log_input",
            Loss::KlDiv,
            LossInput::rows(&lq, m, &q).with_log_input(),
        ),
        (
            "kl-div log_target",
            Loss::KlDiv,
            LossInput::rows(&q, m, &lq).with_log_target(),
        ),
        ("entropy", Loss::Entropy, LossInput::unlabelled(&q, m)),
        ("bce", Loss::Bce, LossInput::new(&q, &unit)),
        ("zero-one", Loss::ZeroOne, LossInput::new(&x, &sign)),
        (
            "bce-logits, pos_weight per column",
            Loss::BceLogits,
            LossInput::rows(&x, m, &unit).with_pos_weight(&pw),
        ),
    ];
    for (name, loss, input) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| e.loss(loss, input, Reduction::Mean).unwrap())
        });
        group.bench_function(format!("{name} grad"), |b| {
            b.iter(|| e.loss_grad(loss, input, Reduction::Sum).unwrap())
        });
    }
    let rrelu = Activation::Rrelu {
        lower: 0.125,
        upper: 1.0 / 3.0,
        training: true,
        seed: 9,
    };
    group.bench_function("rrelu training", |b| {
        b.iter(|| e.activation(&rrelu, &x).unwrap())
    });
    group.bench_function("grad-stats", |b| b.iter(|| e.grad_stats(&x, 1e-6).unwrap()));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench, batch, cpu_coverage
}
criterion_main!(benches);
