//! The engine as a shared service: Send + Sync, the same results from many
//! threads, pipelines compiled once, and a lost device reported as an error.

mod common;

use common::{data, gpu, rng};
use lossgpu::{Activation, Engine, Error, Loss, LossInput, Reduction};

#[test]
fn engine_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
}

fn work(engine: &Engine, x: &[f32], t: &[f32]) -> Vec<u64> {
    let mut out = Vec::new();
    for loss in [
        Loss::Mse,
        Loss::Huber { delta: 1.0 },
        Loss::LogCosh,
        Loss::Quantile { gamma: 0.9 },
    ] {
        let v = engine
            .loss(&loss, &LossInput::new(x, t), Reduction::Mean)
            .unwrap();
        out.push(v.scalar().unwrap().to_bits());
    }
    for act in [Activation::Sigmoid, Activation::Softplus] {
        let y = engine.activation(&act, x).unwrap();
        out.extend(y.iter().step_by(97).map(|v| v.to_bits() as u64));
    }
    out
}

#[test]
fn threads_sharing_one_engine_get_the_single_thread_results() {
    let Some(engine) = gpu() else { return };
    let mut rng = rng("threads");
    let x = data(&mut rng, 100_003);
    let t = data(&mut rng, 100_003);
    let alone = work(engine, &x, &t);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| (0..5).map(|_| work(engine, &x, &t)).collect::<Vec<_>>()))
            .collect();
        for h in handles {
            for run in h.join().unwrap() {
                assert_eq!(
                    run, alone,
                    "a thread's results differ from the single-thread run"
                );
            }
        }
    });
}

#[test]
fn pipelines_are_compiled_once() {
    // An engine of its own: other tests compile pipelines on the shared one.
    let Some(_) = gpu() else { return };
    let engine = &Engine::gpu().unwrap();
    let x = vec![0.5f32; 1000];
    engine
        .activation(&Activation::Elu { alpha: 0.5 }, &x)
        .unwrap();
    engine
        .loss(&Loss::Mae, &LossInput::new(&x, &x), Reduction::Sum)
        .unwrap();
    let before = engine.pipeline_count();
    for _ in 0..20 {
        engine
            .activation(&Activation::Elu { alpha: 0.7 }, &x)
            .unwrap();
        engine
            .loss(&Loss::Mae, &LossInput::new(&x, &x), Reduction::Sum)
            .unwrap();
    }
    assert_eq!(engine.pipeline_count(), before);
}

#[test]
fn a_lost_device_is_an_error_not_a_panic() {
    let Some(_) = gpu() else { return };
    let engine = Engine::gpu().unwrap();
    let x = vec![1.0f32; 64];
    assert!(engine.activation(&Activation::Relu, &x).is_ok());
    engine.wgpu_device().unwrap().destroy();
    match engine.activation(&Activation::Relu, &x) {
        Err(Error::DeviceLost(_)) | Err(Error::Gpu(_)) => {}
        other => panic!("expected a device error, got {other:?}"),
    }
    match engine.loss(&Loss::Mse, &LossInput::new(&x, &x), Reduction::Mean) {
        Err(Error::DeviceLost(_)) | Err(Error::Gpu(_)) => {}
        other => panic!("expected a device error, got {other:?}"),
    }
}

#[test]
fn cpu_engine_says_what_it_is() {
    let engine = Engine::cpu();
    assert_eq!(engine.backend(), lossgpu::Backend::Cpu);
    assert!(engine.device_info().is_none());
    assert!(engine.device_name().contains("cpu"));
}

#[test]
fn an_auto_engine_moves_to_the_cpu_when_its_device_is_lost() {
    let Some(_) = gpu() else { return };
    let engine = Engine::new();
    assert_eq!(engine.backend(), lossgpu::Backend::Gpu);
    let x: Vec<f32> = (0..1000).map(|i| i as f32 * 0.01 - 5.0).collect();
    let before = engine.activation(&Activation::Sigmoid, &x).unwrap();
    engine.wgpu_device().unwrap().destroy();
    let after = engine
        .activation(&Activation::Sigmoid, &x)
        .expect("an auto engine falls back");
    assert_eq!(engine.backend(), lossgpu::Backend::Cpu);
    let why = engine.fallback_reason().expect("it says why");
    assert!(why.contains("lost") || why.contains("Lost"), "{why}");
    for (a, b) in before.iter().zip(&after) {
        assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
    }
    let v = engine
        .loss(&Loss::Mse, &LossInput::new(&x, &after), Reduction::Mean)
        .unwrap();
    assert!(v.scalar().unwrap().is_finite());
    assert!(engine.device_name().contains("cpu"));
}

#[test]
fn a_calibrating_engine_times_each_kind_once_and_says_what_it_chose() {
    let Some(_) = gpu() else { return };
    let engine = Engine::auto();
    assert!(engine.auto_choices().is_empty());
    let mut rng = rng("auto");
    let x = data(&mut rng, 1000);
    let t = data(&mut rng, 1000);
    let want =
        lossgpu::cpu::loss_scalar(&Loss::Mse, &LossInput::new(&x, &t), Reduction::Mean).unwrap();
    for _ in 0..3 {
        let got = engine
            .loss(&Loss::Mse, &LossInput::new(&x, &t), Reduction::Mean)
            .unwrap()
            .scalar()
            .unwrap();
        assert!((got - want).abs() <= 1e-5 * want.abs(), "{got} vs {want}");
    }
    let choices = engine.auto_choices();
    assert_eq!(choices.len(), 1, "{choices:?}");
    let c = &choices[0];
    assert_eq!((c.work, c.size_class), (lossgpu::Work::Loss, 10));
    assert!(c.gpu_seconds > 0.0 && c.cpu_seconds > 0.0, "{c:?}");
    let faster = if c.gpu_seconds < c.cpu_seconds {
        lossgpu::Backend::Gpu
    } else {
        lossgpu::Backend::Cpu
    };
    assert_eq!(c.backend, faster);
    // Another size class and another family are timed on their own.
    engine
        .loss(
            &Loss::Mse,
            &LossInput::new(&x[..300], &t[..300]),
            Reduction::Mean,
        )
        .unwrap();
    let y = engine.activation(&Activation::Tanh, &x).unwrap();
    assert!((y[0] - x[0].tanh()).abs() <= 1e-6);
    let kinds: Vec<_> = engine
        .auto_choices()
        .iter()
        .map(|c| (c.work.name(), c.op.clone(), c.size_class))
        .collect();
    let want = [
        ("activation", "tanh", 10),
        ("loss", "mse", 9),
        ("loss", "mse", 10),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|&(w, o, k)| (w, o.to_string(), k))
        .collect();
    assert_eq!(kinds, want);
    // Another activation of the same size is timed on its own too.
    engine
        .activation_derivative(&Activation::Sigmoid, &x)
        .unwrap();
    assert!(engine.auto_choices().iter().any(|c| c.op == "sigmoid'"));
    assert!(Engine::gpu().unwrap().auto_choices().is_empty());
}
