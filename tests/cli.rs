//! End-to-end tests of the `lossgpu` binary (SPEC §4). Most use
//! `--backend cpu` so they are deterministic on any machine; the GPU ones
//! skip without an adapter unless LOSSGPU_REQUIRE_GPU=1.

use npyz::WriterBuilder;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use tempfile::TempDir;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary inside `dir`, so file names in messages are short.
fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    run_with(dir, args, &[], env)
}

fn run(dir: &Path, args: &[&str]) -> Run {
    run_env(dir, args, &[])
}

/// Succeeds; returns stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let r = run(dir, args);
    assert_eq!(r.code, Some(0), "{args:?} failed: {}", r.stderr);
    r.stdout
}

/// Succeeds with --format json; returns the one object on stdout.
fn ok_json(dir: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let out = ok(dir, &all);
    assert_eq!(out.trim().lines().count(), 1, "one JSON object: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Fails with status 2 and exactly one line on stderr; returns that line.
fn fails(dir: &Path, args: &[&str]) -> String {
    let r = run(dir, args);
    assert_eq!(
        r.code,
        Some(2),
        "{args:?} should fail with 2; stdout: {}",
        r.stdout
    );
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: one stderr line, got {:?}",
        r.stderr
    );
    assert!(lines[0].starts_with("lossgpu: "), "{}", lines[0]);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    lines[0].to_string()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn write_npy<T: npyz::AutoSerialize + Copy>(dir: &Path, name: &str, data: &[T], shape: &[u64]) {
    let file = std::fs::File::create(dir.join(name)).unwrap();
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(std::io::BufWriter::new(file))
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// An npy file from a raw header dict and data bytes (for the malformed ones).
fn write_raw_npy(dir: &Path, name: &str, dict: &str, data: &[u8]) {
    let mut header = dict.to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// f32 values and shape of an output file; checks the dtype is f32.
fn read_npy(path: &Path) -> (Vec<f32>, Vec<u64>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.dtype().descr(), "'<f4'");
    let shape = npy.shape().to_vec();
    (npy.into_vec::<f32>().unwrap(), shape)
}

fn assert_close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= tol * w.abs().max(1.0),
            "[{i}]: {g} vs {w}"
        );
    }
}

fn value(v: &Value) -> f64 {
    v["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("no numeric value in {v}"))
}

const CPU: [&str; 2] = ["--backend", "cpu"];

fn with_cpu<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(CPU);
    all
}

#[test]
fn relu_on_csv_and_sigmoid_on_npy() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "x.csv", "1\n-2\n\n0.5\n");
    ok(
        d,
        &with_cpu(&["activation", "relu", "--input", "x.csv", "--out", "y.npy"]),
    );
    let (y, shape) = read_npy(&d.join("y.npy"));
    assert_eq!(shape, [3]);
    assert_eq!(y, [1.0, 0.0, 0.5]);

    write_npy::<f64>(d, "x.npy", &[0.0, 2.0, -1.0, 10.0], &[2, 2]);
    ok(
        d,
        &with_cpu(&[
            "activation",
            "sigmoid",
            "--input",
            "x.npy",
            "--out",
            "s.npy",
        ]),
    );
    let (s, shape) = read_npy(&d.join("s.npy"));
    assert_eq!(shape, [2, 2], "the input's shape is kept");
    // 1/(1+e^-x) by hand.
    assert_close(
        &s,
        &[
            0.5,
            0.880_797_077_977_882_3,
            0.268_941_421_369_995_1,
            0.999_954_602_131_297_6,
        ],
        1e-6,
    );
}

#[test]
fn derivative_and_parameters() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "x.csv", "1,-2\n0.5,0\n");
    ok(
        d,
        &with_cpu(&[
            "activation",
            "relu",
            "--derivative",
            "--input",
            "x.csv",
            "--out",
            "dy.npy",
        ]),
    );
    let (dy, shape) = read_npy(&d.join("dy.npy"));
    assert_eq!(shape, [2, 2]);
    assert_eq!(dy, [1.0, 0.0, 1.0, 0.0]);

    write_npy::<f32>(d, "z.npy", &[0.0], &[1]);
    ok(
        d,
        &with_cpu(&[
            "activation",
            "sigmoid",
            "--derivative",
            "--input",
            "z.npy",
            "--out",
            "ds.npy",
        ]),
    );
    assert_close(&read_npy(&d.join("ds.npy")).0, &[0.25], 1e-7);

    // leaky-relu with a negative alpha given as "-0.5" (not taken for a flag).
    ok(
        d,
        &with_cpu(&[
            "activation",
            "leaky-relu",
            "--alpha",
            "-0.5",
            "--input",
            "x.csv",
            "--out",
            "l.npy",
        ]),
    );
    assert_eq!(read_npy(&d.join("l.npy")).0, [1.0, 1.0, 0.5, 0.0]);
}

#[test]
fn activation_json_has_the_fields() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "x.csv", "1\n-2\n0.5\n");
    let v = ok_json(
        d,
        &with_cpu(&[
            "activation",
            "tanh",
            "--input",
            "x.csv",
            "--out",
            "y.npy",
            "--derivative",
        ]),
    );
    assert_eq!(v["activation"], "tanh");
    assert_eq!(v["derivative"], true);
    assert_eq!(v["n"], 3);
    assert_eq!(v["out"], "y.npy");
    assert_eq!(v["backend"], "cpu");
    assert!(v["device"].as_str().unwrap().contains("cpu"));
}

#[test]
fn text_output_names_the_backend() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "x.csv", "1\n");
    let out = ok(
        d,
        &with_cpu(&["activation", "relu", "--input", "x.csv", "--out", "y.npy"]),
    );
    assert!(out.lines().any(|l| l == "backend: cpu"), "{out}");
    // With no usable wgpu backend, auto falls back to the CPU and says why.
    let r = run_env(
        d,
        &["activation", "relu", "--input", "x.csv", "--out", "y.npy"],
        &[("WGPU_BACKEND", "metal")],
    );
    if cfg!(target_os = "macos") {
        return;
    }
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("backend: cpu (no GPU adapter"),
        "{}",
        r.stdout
    );
}

#[test]
fn backend_gpu_without_adapter_is_an_error() {
    if cfg!(target_os = "macos") {
        return; // Metal is the one backend we can hide on other systems.
    }
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "x.csv", "1\n");
    let args = [
        "activation",
        "relu",
        "--input",
        "x.csv",
        "--out",
        "y.npy",
        "--backend",
        "gpu",
    ];
    let r = run_env(d, &args, &[("WGPU_BACKEND", "metal")]);
    assert_eq!(r.code, Some(2));
    let last = r.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("lossgpu: error: no GPU adapter"),
        "{}",
        r.stderr
    );
    assert!(!d.join("y.npy").exists());
}

#[test]
fn regression_losses_match_hand_values() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    // e = t - p = [0.5, -0.5, -1]
    write(d, "p.csv", "0.5\n2\n-1\n");
    write(d, "t.csv", "1\n1.5\n-2\n");
    let base = [
        "loss",
        "mse",
        "--pred",
        "p.csv",
        "--target",
        "t.csv",
        "--backend",
        "cpu",
    ];
    let v = ok_json(d, &base);
    assert!((value(&v) - 0.5).abs() < 1e-12, "{v}");
    assert_eq!(v["loss"], "mse");
    assert_eq!(v["reduction"], "mean");
    assert_eq!(v["n"], 3);
    assert_eq!(v["backend"], "cpu");
    assert!(v["device"].is_string());

    let mut sum = base.to_vec();
    sum.extend(["--reduction", "sum"]);
    assert!((value(&ok_json(d, &sum)) - 1.5).abs() < 1e-12);

    let loss = |name: &str, extra: &[&str]| {
        let mut a = vec![
            "loss",
            name,
            "--pred",
            "p.csv",
            "--target",
            "t.csv",
            "--backend",
            "cpu",
        ];
        a.extend(extra);
        value(&ok_json(d, &a))
    };
    // huber δ=1: all |e| <= 1 -> ½e² = [0.125, 0.125, 0.5], mean 0.25.
    assert!((loss("huber", &[]) - 0.25).abs() < 1e-12);
    // δ=0.5: [0.125, 0.125, 0.5·(1 - 0.25)] -> mean 0.625/3.
    assert!((loss("huber", &["--delta", "0.5"]) - 0.625 / 3.0).abs() < 1e-12);
    // smooth-l1 β=1: |e| = [0.5, 0.5, 1] -> [0.125, 0.125, 0.5], mean 0.25;
    // β=0.5: |e| − ¼ = [0.25, 0.25, 0.75] -> mean 1.25/3.
    assert!((loss("smooth-l1", &[]) - 0.25).abs() < 1e-12);
    assert!((loss("smooth-l1", &["--beta", "0.5"]) - 1.25 / 3.0).abs() < 1e-12);

    // Weights [1, 0, 3]: (0.25·1 + 1·3) / 4.
    write(d, "w.csv", "1\n0\n3\n");
    let mut weighted = base.to_vec();
    weighted.extend(["--weights", "w.csv"]);
    assert!((value(&ok_json(d, &weighted)) - 3.25 / 4.0).abs() < 1e-12);
}

#[test]
fn hinge_matches_hand_value() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    // t·p = [0.5, -2, 0.3] -> max(0, 1 - t·p) = [0.5, 3, 0.7], mean 1.4.
    write_npy::<f32>(d, "p.npy", &[0.5, 2.0, -0.3], &[3]);
    write_npy::<i64>(d, "t.npy", &[1, -1, -1], &[3]);
    let v = ok_json(
        d,
        &with_cpu(&["loss", "hinge", "--pred", "p.npy", "--target", "t.npy"]),
    );
    assert!((value(&v) - 1.4).abs() < 1e-6, "{v}");
}

#[test]
fn cross_entropy_with_i64_class_targets() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write_npy::<f32>(d, "logits.npy", &[1.0, 2.0, 3.0, 1.0, 1.0, 1.0], &[2, 3]);
    write_npy::<i64>(d, "cls.npy", &[2, 0], &[2]);
    let args = with_cpu(&[
        "loss",
        "cross-entropy",
        "--pred",
        "logits.npy",
        "--target",
        "cls.npy",
    ]);
    let v = ok_json(d, &args);
    // Row 0: log(e^1+e^2+e^3) - 3; row 1: log 3.
    let row0 = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() - 3.0;
    let row1 = 3f64.ln();
    assert!((value(&v) - (row0 + row1) / 2.0).abs() < 1e-6, "{v}");
    assert_eq!(v["n"], 2, "n counts rows");

    // The same targets as integral floats in a csv, and as one-hot probabilities.
    write(d, "cls.csv", "2\n0\n");
    write(d, "onehot.csv", "0,0,1\n1,0,0\n");
    for target in ["cls.csv", "onehot.csv"] {
        let v = ok_json(
            d,
            &with_cpu(&[
                "loss",
                "cross-entropy",
                "--pred",
                "logits.npy",
                "--target",
                target,
            ]),
        );
        assert!(
            (value(&v) - (row0 + row1) / 2.0).abs() < 1e-6,
            "{target}: {v}"
        );
    }

    // Per-sample values and the gradient softmax - onehot, divided by n.
    let mut none = args.clone();
    none.extend([
        "--reduction",
        "none",
        "--out",
        "l.npy",
        "--grad-out",
        "g.npy",
    ]);
    let v = ok_json(d, &none);
    assert!(v["value"].is_null());
    let (l, shape) = read_npy(&d.join("l.npy"));
    assert_eq!(shape, [2]);
    assert_close(&l, &[row0, row1], 1e-6);
    let (g, shape) = read_npy(&d.join("g.npy"));
    assert_eq!(shape, [2, 3], "the gradient has pred's shape");
    let z: f64 = [1f64, 2.0, 3.0].iter().map(|x| x.exp()).sum();
    let soft = [1f64.exp() / z, 2f64.exp() / z, 3f64.exp() / z - 1.0];
    assert_close(
        &g,
        &[
            soft[0],
            soft[1],
            soft[2],
            1.0 / 3.0 - 1.0,
            1.0 / 3.0,
            1.0 / 3.0,
        ],
        1e-6,
    );
}

#[test]
fn reduction_none_and_grad_out_write_npy() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "p.csv", "0.5,2\n-1,0\n");
    write(d, "t.csv", "1\n1.5\n-2\n0\n");
    let args = with_cpu(&[
        "loss",
        "mse",
        "--pred",
        "p.csv",
        "--target",
        "t.csv",
        "--reduction",
        "none",
        "--out",
        "l.npy",
    ]);
    let out = ok(d, &args);
    assert!(out.contains("value: none"), "{out}");
    let (l, shape) = read_npy(&d.join("l.npy"));
    assert_eq!(shape, [4], "n per-sample values");
    assert_eq!(l, [0.25, 0.25, 1.0, 0.0]);

    // mean gradient of mse: -2e/n with e = [0.5, -0.5, -1, 0].
    let args = with_cpu(&[
        "loss",
        "mse",
        "--pred",
        "p.csv",
        "--target",
        "t.csv",
        "--grad-out",
        "g.npy",
    ]);
    ok(d, &args);
    let (g, shape) = read_npy(&d.join("g.npy"));
    assert_eq!(shape, [2, 2], "pred's shape");
    assert_close(&g, &[-0.25, 0.25, 0.5, 0.0], 1e-7);
}

#[test]
fn json_writes_nan_as_a_string() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "p.csv", "1\nnan\n");
    write(d, "t.csv", "0\n0\n");
    let v = ok_json(
        d,
        &with_cpu(&["loss", "mse", "--pred", "p.csv", "--target", "t.csv"]),
    );
    assert_eq!(v["value"], "NaN", "{v}");
    let text = ok(
        d,
        &with_cpu(&["loss", "mse", "--pred", "p.csv", "--target", "t.csv"]),
    );
    assert!(text.contains("value: NaN"), "{text}");
}

#[test]
fn devices_lists_the_cpu() {
    let dir = TempDir::new().unwrap();
    let v = ok_json(dir.path(), &["devices", "--backend", "cpu"]);
    let list = v["devices"].as_array().unwrap();
    assert!(list.iter().any(|x| x["backend"] == "cpu"), "{v}");
    assert_eq!(v["default"], "cpu");
}

#[test]
fn help_and_version_succeed() {
    let dir = TempDir::new().unwrap();
    assert!(ok(dir.path(), &["--help"]).contains("loss"));
    assert!(ok(dir.path(), &["loss", "--help"]).contains("--grad-out"));
    assert!(ok(dir.path(), &["--version"]).starts_with("lossgpu "));
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "p.csv", "0.5\n2\n-1\n");
    write(d, "t.csv", "1\n1.5\n-2\n");
    write(d, "half.csv", "1\n0.5\n-1\n");
    write(d, "two.csv", "1\n2\n");
    write(d, "empty.csv", "\n  \n");
    write(d, "text.csv", "1\n2\nabc\n");
    write(d, "ragged.csv", "1,2\n3\n");
    write_raw_npy(
        d,
        "fortran.npy",
        "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }",
        &[0; 32],
    );
    write_raw_npy(
        d,
        "big.npy",
        "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }",
        &[0; 16],
    );
    write_raw_npy(
        d,
        "u8.npy",
        "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
        &[0; 2],
    );
    write_raw_npy(
        d,
        "short.npy",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
        &[0; 8],
    );
    write_npy::<f32>(d, "cube.npy", &[0.0; 8], &[2, 2, 2]);
    std::fs::write(d.join("garbage.npy"), b"this is not an npy file at all").unwrap();
    write_npy::<f32>(d, "logits.npy", &[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    write_npy::<i64>(d, "neg.npy", &[1, -1], &[2]);
    write_npy::<i64>(d, "big_class.npy", &[1, 2], &[2]);

    let cases: &[(&[&str], &[&str])] = &[
        (
            &["loss", "mse", "--pred", "missing.csv", "--target", "t.csv"],
            &["missing.csv"],
        ),
        (
            &["loss", "nonsense", "--pred", "p.csv", "--target", "t.csv"],
            &["unknown loss 'nonsense'"],
        ),
        (
            &["loss", "hinge", "--pred", "p.csv", "--target", "half.csv"],
            &["half.csv", "[1]", "0.5"],
        ),
        (
            &["loss", "mse", "--pred", "p.csv", "--target", "two.csv"],
            &["two.csv", "2 values", "3"],
        ),
        (
            &["loss", "mse", "--pred", "p.csv", "--target", "empty.csv"],
            &["empty.csv", "no values"],
        ),
        (
            &[
                "loss", "huber", "--pred", "p.csv", "--target", "t.csv", "--delta", "-1",
            ],
            &["--delta", "-1"],
        ),
        (
            &[
                "loss",
                "quantile",
                "--pred",
                "p.csv",
                "--target",
                "t.csv",
                "--quantile",
                "1.5",
            ],
            &["--quantile", "1.5"],
        ),
        (
            &["loss", "mse", "--pred", "fortran.npy", "--target", "t.csv"],
            &["fortran.npy", "Fortran"],
        ),
        (
            &["loss", "mse", "--pred", "garbage.npy", "--target", "t.csv"],
            &["garbage.npy"],
        ),
        (
            &["loss", "mse", "--pred", "big.npy", "--target", "t.csv"],
            &["big.npy", "big-endian"],
        ),
        (
            &["loss", "mse", "--pred", "u8.npy", "--target", "t.csv"],
            &["u8.npy", "not supported"],
        ),
        (
            &["loss", "mse", "--pred", "short.npy", "--target", "t.csv"],
            &["short.npy", "truncated"],
        ),
        (
            &["loss", "mse", "--pred", "cube.npy", "--target", "t.csv"],
            &["cube.npy", "3 dimensions"],
        ),
        (
            &["loss", "mse", "--pred", "p.csv", "--target", "text.csv"],
            &["text.csv", "line 3", "'abc'"],
        ),
        (
            &["loss", "mse", "--pred", "p.csv", "--target", "ragged.csv"],
            &["ragged.csv", "line 2"],
        ),
        (
            &[
                "loss",
                "mse",
                "--pred",
                "p.csv",
                "--target",
                "t.csv",
                "--no-such-flag",
            ],
            &["--no-such-flag"],
        ),
        (
            &[
                "loss",
                "mse",
                "--pred",
                "p.csv",
                "--target",
                "t.csv",
                "--reduction",
                "none",
            ],
            &["--out"],
        ),
        (&["loss", "mse", "--pred", "p.csv"], &["--target"]),
        (
            &["loss", "entropy", "--pred", "p.csv", "--target", "t.csv"],
            &["entropy", "--target"],
        ),
        (
            &[
                "loss", "mse", "--pred", "p.csv", "--target", "t.csv", "--delta", "2",
            ],
            &["--delta"],
        ),
        (
            &[
                "loss", "huber", "--pred", "p.csv", "--target", "t.csv", "--beta", "2",
            ],
            &["huber", "--beta"],
        ),
        (
            &[
                "loss",
                "smooth-l1",
                "--pred",
                "p.csv",
                "--target",
                "t.csv",
                "--beta",
                "-1",
            ],
            &["--beta", "-1"],
        ),
        (
            &[
                "loss",
                "rmse",
                "--pred",
                "p.csv",
                "--target",
                "t.csv",
                "--reduction",
                "sum",
            ],
            &["rmse"],
        ),
        (
            &[
                "loss",
                "cross-entropy",
                "--pred",
                "logits.npy",
                "--target",
                "neg.npy",
            ],
            &["neg.npy", "[1]", "-1"],
        ),
        (
            &[
                "loss",
                "cross-entropy",
                "--pred",
                "logits.npy",
                "--target",
                "big_class.npy",
            ],
            &["big_class.npy", "[1]", "2"],
        ),
        (
            &[
                "activation",
                "nonsense",
                "--input",
                "p.csv",
                "--out",
                "y.npy",
            ],
            &["unknown activation"],
        ),
        (
            &["activation", "relu", "--input", "p.csv", "--out", "y.csv"],
            &["y.csv", ".npy"],
        ),
        (
            &[
                "activation",
                "swish",
                "--input",
                "p.csv",
                "--out",
                "y.npy",
                "--alpha",
                "2",
            ],
            &["--alpha"],
        ),
        (
            &[
                "activation",
                "rrelu",
                "--input",
                "p.csv",
                "--out",
                "y.npy",
                "--lower",
                "0.5",
                "--upper",
                "0.1",
            ],
            &["--lower"],
        ),
        (&["activation", "relu", "--input", "p.csv"], &["--out"]),
        (&[], &["subcommand"]),
    ];
    for (args, needles) in cases {
        let line = fails(d, &with_cpu(args));
        for needle in *needles {
            assert!(line.contains(needle), "{args:?}: {line:?} lacks {needle:?}");
        }
    }
    assert!(!d.join("y.npy").exists(), "no output after an error");
}

/// True when a GPU test should run; with LOSSGPU_REQUIRE_GPU=1 a missing
/// adapter fails the test instead of skipping it.
fn gpu_available() -> bool {
    match lossgpu::Engine::gpu() {
        Ok(_) => true,
        Err(e) if std::env::var("LOSSGPU_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("LOSSGPU_REQUIRE_GPU=1 but {e}")
        }
        Err(_) => {
            eprintln!("skipping: no GPU adapter");
            false
        }
    }
}

fn assert_rel(gpu: f64, cpu: f64) {
    assert!(
        (gpu - cpu).abs() <= 1e-5 * cpu.abs(),
        "gpu {gpu} vs cpu {cpu}"
    );
}

#[test]
fn gpu_activation_matches_cpu() {
    if !gpu_available() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let x: Vec<f32> = (0..257).map(|i| (i as f32 - 128.0) * 0.37).collect();
    write_npy(d, "x.npy", &x, &[x.len() as u64]);
    for name in ["sigmoid", "swish", "elu", "softplus"] {
        for deriv in [false, true] {
            let mut args = vec!["activation", name, "--input", "x.npy"];
            if deriv {
                args.push("--derivative");
            }
            let mut gpu = args.clone();
            gpu.extend(["--out", "g.npy", "--backend", "gpu"]);
            let v = ok_json(d, &gpu);
            assert_eq!(v["backend"], "gpu");
            let mut cpu = args;
            cpu.extend(["--out", "c.npy", "--backend", "cpu"]);
            ok(d, &cpu);
            let (g, gs) = read_npy(&d.join("g.npy"));
            let (c, cs) = read_npy(&d.join("c.npy"));
            assert_eq!(gs, cs);
            for (i, (&a, &b)) in g.iter().zip(&c).enumerate() {
                // SPEC §5 elementwise: rtol 1e-5, atol 1e-6.
                assert!(
                    (a - b).abs() as f64 <= 1e-5 * b.abs() as f64 + 1e-6,
                    "{name} deriv={deriv} [{i}]: gpu {a} vs cpu {b}"
                );
            }
        }
    }
}

#[test]
fn gpu_loss_matches_cpu() {
    if !gpu_available() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let n = 1000;
    let p: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.1)
        .collect();
    let t: Vec<f32> = (0..n)
        .map(|i| ((i * 53 % 97) as f32 - 48.0) * 0.1)
        .collect();
    let labels: Vec<i32> = (0..n).map(|i| if i % 3 == 0 { 1 } else { -1 }).collect();
    let classes: Vec<i64> = (0..n / 4).map(|i| (i % 4) as i64).collect();
    write_npy(d, "p.npy", &p, &[n as u64]);
    write_npy(d, "t.npy", &t, &[n as u64]);
    write_npy(d, "y.npy", &labels, &[n as u64]);
    write_npy(d, "logits.npy", &p, &[(n / 4) as u64, 4]);
    write_npy(d, "cls.npy", &classes, &[(n / 4) as u64]);
    let cases: &[(&str, &str, &str)] = &[
        ("mse", "p.npy", "t.npy"),
        ("huber", "p.npy", "t.npy"),
        ("log-cosh", "p.npy", "t.npy"),
        ("hinge", "p.npy", "y.npy"),
        ("logistic", "p.npy", "y.npy"),
        ("cross-entropy", "logits.npy", "cls.npy"),
    ];
    // Reduction sum keeps the gradients O(1), where SPEC §5's elementwise
    // tolerance (rtol 1e-5, atol 1e-6) means something.
    for &(name, pred, target) in cases {
        let args = [
            "loss",
            name,
            "--pred",
            pred,
            "--target",
            target,
            "--reduction",
            "sum",
        ];
        let mut gpu = args.to_vec();
        gpu.extend(["--backend", "gpu", "--grad-out", "gg.npy"]);
        let vg = ok_json(d, &gpu);
        assert_eq!(vg["backend"], "gpu");
        let mut cpu = args.to_vec();
        cpu.extend(["--backend", "cpu", "--grad-out", "cg.npy"]);
        let vc = ok_json(d, &cpu);
        assert_rel(value(&vg), value(&vc));
        let (gg, _) = read_npy(&d.join("gg.npy"));
        let (cg, _) = read_npy(&d.join("cg.npy"));
        for (i, (&a, &b)) in gg.iter().zip(&cg).enumerate() {
            assert!(
                (a - b).abs() as f64 <= 1e-5 * b.abs() as f64 + 1e-6,
                "{name} grad [{i}]: gpu {a} vs cpu {b}"
            );
        }
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn grad_stats_and_clip_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "g.csv", "3\n4\n0\n1e-9\n");
    for backend in ["cpu", "auto"] {
        let v = ok_json(d, &["grad-stats", "--input", "g.csv", "--backend", backend]);
        assert!((num(&v["l2_norm"]) - 5.0).abs() < 1e-6, "{v}");
        assert_eq!(num(&v["max_abs"]), 4.0);
        assert_eq!((num(&v["nan_count"]), num(&v["inf_count"])), (0.0, 0.0));
        assert_eq!(num(&v["vanishing_fraction"]), 0.5);
        assert_eq!(num(&v["n"]), 4.0);
        let v = ok_json(
            d,
            &[
                "grad-stats",
                "--input",
                "g.csv",
                "--vanish-eps",
                "0.5",
                "--backend",
                backend,
            ],
        );
        assert_eq!(num(&v["vanishing_fraction"]), 0.5);

        let v = ok_json(
            d,
            &[
                "clip",
                "--input",
                "g.csv",
                "--out",
                "c.npy",
                "--max-norm",
                "1",
                "--backend",
                backend,
            ],
        );
        assert!((num(&v["l2_norm_before"]) - 5.0).abs() < 1e-6);
        assert!((num(&v["scale"]) - 0.2).abs() < 1e-6);
        let (c, shape) = read_npy(&d.join("c.npy"));
        assert_eq!(shape, vec![4]);
        assert_close(&c, &[0.6, 0.8, 0.0, 2e-10], 1e-6);

        write(d, "h.csv", "-5\n0.5\n7\n");
        let v = ok_json(
            d,
            &[
                "clip",
                "--input",
                "h.csv",
                "--out",
                "c.npy",
                "--max-value",
                "2",
                "--backend",
                backend,
            ],
        );
        assert_eq!(num(&v["scale"]), 1.0);
        let (c, _) = read_npy(&d.join("c.npy"));
        assert_eq!(c, vec![-2.0, 0.5, 2.0]);
    }
    let m = fails(
        d,
        &[
            "clip",
            "--input",
            "g.csv",
            "--out",
            "c.npy",
            "--max-norm",
            "0",
        ],
    );
    assert!(m.contains("--max-norm"), "{m}");
    fails(d, &["clip", "--input", "g.csv", "--out", "c.npy"]);
    fails(
        d,
        &[
            "clip",
            "--input",
            "g.csv",
            "--out",
            "c.npy",
            "--max-norm",
            "1",
            "--max-value",
            "1",
        ],
    );
    let m = fails(d, &["grad-stats", "--input", "g.csv", "--vanish-eps", "-1"]);
    assert!(m.contains("vanish"), "{m}");
    fails(d, &["grad-stats", "--input", "missing.csv"]);
}

#[test]
fn metrics_command_gives_every_metric() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "p.csv", "1\n2\n3\n");
    write(d, "t.csv", "1.5\n2\n1\n");
    for backend in ["cpu", "auto"] {
        let v = ok_json(
            d,
            &[
                "metrics",
                "--pred",
                "p.csv",
                "--target",
                "t.csv",
                "--backend",
                backend,
            ],
        );
        // e = 0.5, 0, −2
        assert!((num(&v["mse"]) - 4.25 / 3.0).abs() < 1e-6, "{v}");
        assert!((num(&v["rmse"]) - (4.25f64 / 3.0).sqrt()).abs() < 1e-6);
        assert!((num(&v["mae"]) - 2.5 / 3.0).abs() < 1e-6);
        assert!((num(&v["mape"]) - (100.0 * 0.5 / 1.5 + 100.0 * 2.0) / 3.0).abs() < 1e-4);
        assert!((num(&v["huber"]) - (0.125 + 1.5) / 3.0).abs() < 1e-6);
        assert!((num(&v["quantile"]) - (0.25 + 1.0) / 3.0).abs() < 1e-6);
        assert!(v["smape"].is_number() && v["log_cosh"].is_number());
        assert_eq!(num(&v["n"]), 3.0);
    }
    write(d, "w.csv", "1\n-1\n1\n");
    let m = fails(
        d,
        &[
            "metrics",
            "--pred",
            "p.csv",
            "--target",
            "t.csv",
            "--weights",
            "w.csv",
        ],
    );
    assert!(m.contains("w.csv") && m.contains("weights[1]"), "{m}");
    fails(
        d,
        &[
            "metrics", "--pred", "p.csv", "--target", "t.csv", "--delta", "0",
        ],
    );
    write(d, "short.csv", "1\n");
    fails(d, &["metrics", "--pred", "p.csv", "--target", "short.csv"]);
}

// ---- bench -------------------------------------------------------------

/// The op rows `lossgpu bench` times at every size.
const BENCH_OPS: [&str; 20] = [
    "sigmoid",
    "tanh",
    "swish",
    "sigmoid'",
    "relu",
    "mse",
    "mse grad",
    "huber",
    "huber grad",
    "bce-logits",
    "bce-logits grad",
    "cross-entropy m=10",
    "cross-entropy m=10 grad",
    "mae",
    "quantile",
    "metrics (fused)",
    "mse bf16",
    "bce-logits bf16",
    "cross-entropy m=10 bf16",
    "grad-stats",
];

/// A positive, finite number of seconds (or ratio).
fn positive(v: &Value, what: &str) -> f64 {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(x.is_finite() && x > 0.0, "{what} = {x}");
    x
}

/// What every bench report holds, GPU or not; returns the result rows.
fn check_bench_report(v: &Value, sizes: &[u64]) -> Vec<Value> {
    let rows = v["results"].as_array().expect("results").clone();
    assert_eq!(rows.len(), sizes.len() * BENCH_OPS.len(), "{v}");
    for (i, row) in rows.iter().enumerate() {
        let op = row["op"].as_str().unwrap();
        assert_eq!(op, BENCH_OPS[i % BENCH_OPS.len()]);
        let n = row["n"].as_u64().unwrap();
        let size = sizes[i / BENCH_OPS.len()];
        // Cross-entropy runs whole rows of 10.
        assert_eq!(
            n,
            if op.starts_with("cross") {
                size / 10 * 10
            } else {
                size
            }
        );
        positive(&row["cpu_seconds"], "cpu_seconds");
        positive(&row["cpu_gbps"], "cpu_gbps");
        positive(&row["cpu_host_one_thread_fraction"], "cpu fraction");
        positive(&row["cpu_host_all_cores_fraction"], "cpu fraction");
        assert!(row["repetitions"]["cpu"].as_u64().unwrap() >= 3);
    }
    let ceilings = v["ceilings"].as_array().expect("ceilings");
    assert_eq!(ceilings.len(), sizes.len());
    for c in ceilings {
        for key in [
            "host_read1_one_thread_seconds",
            "host_read2_one_thread_gbps",
            "host_read2_all_cores_gbps",
        ] {
            positive(&c[key], key);
        }
    }
    // Measurements and ratios only: no verdicts of project goals.
    assert!(v.get("targets").is_none(), "{v}");
    let summary = &v["summary"];
    assert_eq!(
        summary["n"].as_u64(),
        sizes.iter().max().copied(),
        "{summary}"
    );
    positive(&summary["metrics_over_mse"]["cpu"], "summary metrics/mse");
    positive(
        &summary["cpu_mse_host_read_fraction_one_thread"],
        "summary cpu fraction",
    );
    positive(&summary["batch_cpu_separate_over_batched"], "summary batch");
    positive(&v["batch"]["cpu_separate_over_batched"], "cpu batch ratio");
    // bf16 rows against their f32 rows: half the bytes, a measured time.
    for (op, bytes) in [
        ("mse", 0.5),
        ("bce-logits", 0.5),
        ("cross-entropy m=10", 2.4 / 4.4),
    ] {
        let half = &summary["bf16_over_f32"][op];
        assert!(
            (num(&half["bytes_read"]) - bytes).abs() < 1e-9,
            "{op}: {half}"
        );
        positive(&half["cpu"], op);
    }
    rows
}

#[test]
fn bench_quick_on_the_cpu_reports_every_row_and_writes_the_json_file() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let v = ok_json(
        d,
        &["bench", "--quick", "--backend", "cpu", "--json", "b.json"],
    );
    assert!(
        v["gpu"]
            .as_str()
            .unwrap()
            .starts_with("none: timing the CPU only"),
        "{}",
        v["gpu"]
    );
    assert!(v["auto"].is_null());
    let rows = check_bench_report(&v, &[1 << 10, 1 << 14, 1 << 16]);
    for row in &rows {
        for key in [
            "gpu_e2e_seconds",
            "gpu_resident_seconds",
            "auto_seconds",
            "max_err",
        ] {
            assert!(row[key].is_null(), "{key} without a GPU: {row}");
        }
    }
    // --json FILE holds the same report as stdout.
    let file: Value = serde_json::from_str(&std::fs::read_to_string(d.join("b.json")).unwrap())
        .expect("the --json file is JSON");
    assert_eq!(file["results"].as_array().unwrap().len(), rows.len());
    assert_eq!(file["summary"]["n"], v["summary"]["n"]);
    // Text mode says what it found first: the summary follows the device lines.
    let text = ok(d, &["bench", "--sizes", "1000", "--backend", "cpu"]);
    let summary = text.find("summary: at n=1000").expect("a summary");
    assert!(
        summary < text.find("ceilings:").expect("ceilings"),
        "{text}"
    );
    assert!(
        !text.contains("FAIL") && !text.contains("targets"),
        "{text}"
    );
    // --full is the whole sweep, and says so in its help; it takes no sizes.
    let line = fails(d, &["bench", "--full", "--sizes", "1000"]);
    assert!(
        line.contains("--full") || line.contains("--sizes"),
        "{line}"
    );
    // A size no memory holds is one line, not an aborted allocation.
    for backend in ["cpu", "auto"] {
        let line = fails(
            d,
            &["bench", "--sizes", "1000000000000", "--backend", backend],
        );
        assert!(
            line.contains("memory") || line.contains("allocate"),
            "{line}"
        );
    }
    // A size too small for one row of cross-entropy is an input error.
    let line = fails(d, &["bench", "--sizes", "5", "--backend", "cpu"]);
    assert!(line.contains("at least 10"), "{line}");
}

#[test]
fn gpu_bench_times_every_column_against_the_ceilings() {
    if !gpu_available() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let v = ok_json(
        dir.path(),
        &["bench", "--quick", "--sizes", "4096", "--backend", "gpu"],
    );
    assert!(!v["gpu"].as_str().unwrap().starts_with("none"));
    // The calibrating engine says what it chose, per op family and size.
    let choices = v["auto"]["choices"].as_array().unwrap();
    assert!(v["auto"]["device"].as_str().is_some());
    for work in [
        "activation",
        "loss",
        "row-loss",
        "loss-grad",
        "metrics",
        "batch",
    ] {
        let c = choices
            .iter()
            .find(|c| c["work"] == work)
            .unwrap_or_else(|| panic!("no {work} choice in {choices:?}"));
        assert!(
            ["gpu", "cpu"].contains(&c["backend"].as_str().unwrap()),
            "{c}"
        );
        positive(&c["gpu_seconds"], work);
        positive(&c["cpu_seconds"], work);
    }
    for row in check_bench_report(&v, &[4096]) {
        let op = row["op"].as_str().unwrap().to_string();
        for key in [
            "gpu_e2e_seconds",
            "auto_seconds",
            "gpu_e2e_gbps",
            "auto_over_best",
            "e2e_read_fraction",
            "e2e_copy_fraction",
        ] {
            positive(&row[key], &format!("{op} {key}"));
        }
        // The metrics and the gradient statistics have no resident path.
        let resident = !op.starts_with("metrics") && op != "grad-stats";
        for key in [
            "gpu_resident_seconds",
            "resident_read_fraction",
            "resident_copy_fraction",
        ] {
            if resident {
                positive(&row[key], &format!("{op} {key}"));
            } else {
                assert!(row[key].is_null(), "{op} {key}: {row}");
            }
        }
        let err = num(&row["max_err"]);
        assert!(err <= 1e-5, "{op}: GPU and CPU differ by {err}");
    }
    let c = &v["ceilings"][0];
    for key in [
        "gpu_copy1_gbps",
        "gpu_copy2_gbps",
        "gpu_read1_gbps",
        "gpu_read2_gbps",
    ] {
        positive(&c[key], key);
    }
    positive(&v["batch"]["gpu_separate_over_batched"], "gpu batch ratio");
    // The summary's GPU ratios are measured at any size.
    let summary = &v["summary"];
    for key in [
        "gpu_e2e_over_cpu_geomean",
        "auto_over_best_worst",
        "batch_gpu_separate_over_batched",
        "max_err",
    ] {
        assert!(summary[key].as_f64().is_some(), "{key}: {summary}");
    }
    for loss in ["mse", "huber", "bce-logits", "cross-entropy m=10"] {
        positive(&summary["gpu_resident_read_fraction"][loss], loss);
    }
    positive(
        &summary["metrics_over_mse"]["gpu_e2e"],
        "summary metrics/mse gpu",
    );
    for op in ["mse", "bce-logits", "cross-entropy m=10"] {
        positive(&summary["bf16_over_f32"][op]["gpu_resident"], op);
        positive(&summary["bf16_over_f32"][op]["gpu_e2e"], op);
    }
}

// ---- outputs -----------------------------------------------------------

#[test]
fn outputs_that_collide_are_refused_before_any_work() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "p.csv", "0.5\n1\n-2\n");
    write(d, "t.csv", "1\n1.5\n-1\n");
    // Two outputs naming one file: the gradient would replace the values.
    for (out, grad) in [("same.npy", "same.npy"), ("same.npy", "./same.npy")] {
        let line = fails(
            d,
            &[
                "loss",
                "mse",
                "--pred",
                "p.csv",
                "--target",
                "t.csv",
                "--reduction",
                "none",
                "--out",
                out,
                "--grad-out",
                grad,
            ],
        );
        assert!(
            line.contains("--out and --grad-out name the same file"),
            "{line}"
        );
        assert!(!d.join("same.npy").exists(), "nothing was written");
    }
    // An output naming an input, directly, through a symlink or a hard link.
    write_npy(d, "x.npy", &[-1.0f32, 0.5, 2.0], &[3]);
    std::os::unix::fs::symlink(d.join("x.npy"), d.join("link.npy")).unwrap();
    std::fs::hard_link(d.join("x.npy"), d.join("hard.npy")).unwrap();
    for out in ["x.npy", "link.npy", "hard.npy"] {
        let line = fails(d, &["activation", "relu", "--input", "x.npy", "--out", out]);
        assert!(line.contains("--in-place"), "{line}");
        let line = fails(
            d,
            &["clip", "--input", "x.npy", "--out", out, "--max-value", "1"],
        );
        assert!(line.contains("--input input"), "{line}");
    }
    assert_eq!(read_npy(&d.join("x.npy")).0, vec![-1.0, 0.5, 2.0]);
    let line = fails(
        d,
        &[
            "loss",
            "mse",
            "--pred",
            "p.csv",
            "--target",
            "x.npy",
            "--reduction",
            "none",
            "--out",
            "x.npy",
        ],
    );
    assert!(line.contains("--target"), "{line}");
    // Asked for explicitly, the input is replaced, once the output is whole.
    ok(
        d,
        &[
            "activation",
            "relu",
            "--input",
            "x.npy",
            "--out",
            "x.npy",
            "--in-place",
        ],
    );
    assert_eq!(read_npy(&d.join("x.npy")).0, vec![0.0, 0.5, 2.0]);
}

#[test]
fn a_failed_write_leaves_the_old_file_and_no_temporary() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "x.csv", "1\n2\n");
    // The target is a directory: the rename fails after the data is written.
    std::fs::create_dir(d.join("out.npy")).unwrap();
    let line = fails(
        d,
        &["activation", "relu", "--input", "x.csv", "--out", "out.npy"],
    );
    assert!(line.contains("cannot write"), "{line}");
    assert!(d.join("out.npy").is_dir());
    let names: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("partial")), "{names:?}");
}

#[test]
fn a_killed_in_place_run_leaves_the_old_or_the_new_file_whole() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let n = 1 << 22;
    let x: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
    write_npy(d, "x.npy", &x, &[n as u64]);
    let relu: Vec<f32> = x.iter().map(|v| v.max(0.0)).collect();
    for delay_ms in [20, 80, 200] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lossgpu"))
            .args(["activation", "relu", "--input", "x.npy", "--out", "x.npy"])
            .args(["--in-place", "--backend", "cpu"])
            .current_dir(d)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let (got, shape) = read_npy(&d.join("x.npy"));
        assert_eq!(shape, vec![n as u64]);
        assert!(got == x || got == relu, "after {delay_ms} ms: a mixed file");
        write_npy(d, "x.npy", &x, &[n as u64]);
    }
}

// ---- before any device -------------------------------------------------

/// Runs the binary with `remove` taken out of the environment and `set` put in.
fn run_with(dir: &Path, args: &[&str], remove: &[&str], set: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lossgpu"));
    cmd.args(args).current_dir(dir);
    for k in remove {
        cmd.env_remove(k);
    }
    for (k, v) in set {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the binary runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn bad_input_is_rejected_before_a_device_is_opened() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "p.csv", "0.5\n1\n-2\n");
    write(d, "labels.csv", "1\n0.5\n-1\n");
    // A backend that cannot be opened: the input's error comes first, alone.
    let bogus = [("WGPU_BACKEND", "bogus")];
    let cases: [&[&str]; 4] = [
        &[
            "loss",
            "hinge",
            "--pred",
            "p.csv",
            "--target",
            "labels.csv",
            "--backend",
            "gpu",
        ],
        &[
            "loss",
            "mse",
            "--pred",
            "p.csv",
            "--target",
            "p.csv",
            "--reduction",
            "none",
            "--backend",
            "gpu",
        ],
        &[
            "metrics",
            "--pred",
            "p.csv",
            "--target",
            "p.csv",
            "--delta",
            "0",
            "--backend",
            "gpu",
        ],
        &[
            "grad-stats",
            "--input",
            "p.csv",
            "--vanish-eps",
            "-1",
            "--backend",
            "gpu",
        ],
    ];
    for args in cases {
        let r = run_with(d, args, &[], &bogus);
        assert_eq!(r.code, Some(2), "{args:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("WGPU_BACKEND"), "{args:?}: {}", r.stderr);
    }
    // With a valid input, the misspelt variable is named as such.
    let r = run_with(
        d,
        &[
            "loss",
            "mse",
            "--pred",
            "p.csv",
            "--target",
            "p.csv",
            "--backend",
            "gpu",
        ],
        &[],
        &bogus,
    );
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("WGPU_BACKEND='bogus' names no backend"),
        "{}",
        r.stderr
    );
    // auto falls back to the CPU and says why, in JSON too.
    let r = run_with(
        d,
        &[
            "loss", "mse", "--pred", "p.csv", "--target", "p.csv", "--format", "json",
        ],
        &[],
        &bogus,
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["backend"], "cpu");
    assert!(
        v["fallback_reason"]
            .as_str()
            .unwrap()
            .contains("WGPU_BACKEND"),
        "{v}"
    );
}

#[test]
fn no_driver_chatter_without_xdg_runtime_dir() {
    if !gpu_available() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "p.csv", "0.5\n1\n-2\n");
    write(d, "labels.csv", "1\n0.5\n-1\n");
    let ok_run = run_with(
        d,
        &[
            "loss",
            "mse",
            "--pred",
            "p.csv",
            "--target",
            "p.csv",
            "--backend",
            "gpu",
        ],
        &["XDG_RUNTIME_DIR"],
        &[],
    );
    assert_eq!(ok_run.code, Some(0), "{}", ok_run.stderr);
    assert_eq!(ok_run.stderr, "", "stderr should be empty");
    // A value the GPU finds is still one line.
    let bad = run_with(
        d,
        &[
            "loss",
            "hinge",
            "--pred",
            "p.csv",
            "--target",
            "labels.csv",
            "--backend",
            "gpu",
        ],
        &["XDG_RUNTIME_DIR"],
        &[],
    );
    assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);
}

#[test]
fn small_things_users_notice() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    // f64 values below the f32 range are counted, not silently zeroed.
    let tiny: Vec<f64> = vec![1e-50, 0.0, -1e-300, 0.5];
    write_npy(d, "tiny.npy", &tiny, &[4]);
    write(d, "t.csv", "0\n0\n0\n0\n");
    let v = ok_json(
        d,
        &[
            "loss",
            "mse",
            "--pred",
            "tiny.npy",
            "--target",
            "t.csv",
            "--backend",
            "cpu",
        ],
    );
    assert_eq!(v["underflowed"].as_u64(), Some(2), "{v}");
    let v = ok_json(
        d,
        &["grad-stats", "--input", "tiny.npy", "--backend", "cpu"],
    );
    assert_eq!(v["underflowed"].as_u64(), Some(2), "{v}");
    let v = ok_json(
        d,
        &[
            "loss",
            "mse",
            "--pred",
            "t.csv",
            "--target",
            "t.csv",
            "--backend",
            "cpu",
        ],
    );
    assert!(v.get("underflowed").is_none(), "{v}");
    // Numbers in messages are short: 1e300, not 301 digits.
    write_npy(d, "huge.npy", &[1e300f64], &[1]);
    let line = fails(d, &["grad-stats", "--input", "huge.npy"]);
    assert!(line.contains("1e300") && line.len() < 120, "{line}");
    // A header that echoes 5 000 characters is cut in the message.
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': (1,), '{}': 1}}",
        "k".repeat(5000)
    );
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((dict.len() as u16).to_le_bytes());
    bytes.extend(dict.as_bytes());
    bytes.extend([0u8; 4]);
    std::fs::write(d.join("echo.npy"), bytes).unwrap();
    let line = fails(d, &["grad-stats", "--input", "echo.npy"]);
    assert!(line.len() < 400, "{} characters", line.len());
}

// ---- inputs in chunks --------------------------------------------------

/// Succeeds with --format json under LOSSGPU_CLI_CHUNK=`chunk`.
fn json_chunked(dir: &Path, args: &[&str], chunk: &str) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let r = run_env(dir, &all, &[("LOSSGPU_CLI_CHUNK", chunk)]);
    assert_eq!(r.code, Some(0), "{args:?}: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

fn close(a: &Value, b: &Value, what: &str) {
    let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
    assert!(
        (a - b).abs() <= 1e-6 * b.abs().max(1e-12),
        "{what}: {a} vs {b}"
    );
}

#[test]
fn files_read_in_chunks_give_the_whole_file_s_results() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let n = 10_007;
    let p: Vec<f32> = (0..n)
        .map(|i| ((i * 37) % 101) as f32 * 0.05 - 2.5)
        .collect();
    let t: Vec<f64> = (0..n)
        .map(|i| ((i * 13) % 97) as f64 * 0.04 - 2.0)
        .collect();
    let w: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.5).collect();
    write_npy(d, "p.npy", &p, &[n as u64]);
    write_npy(d, "t.npy", &t, &[n as u64]);
    write_npy(d, "w.npy", &w, &[n as u64]);
    for backend in ["cpu", "gpu"] {
        if backend == "gpu" && !gpu_available() {
            continue;
        }
        let b = ["--backend", backend];
        for args in [
            &["loss", "mse", "--pred", "p.npy", "--target", "t.npy"][..],
            &[
                "loss",
                "huber",
                "--pred",
                "p.npy",
                "--target",
                "t.npy",
                "--weights",
                "w.npy",
                "--reduction",
                "sum",
            ],
            &[
                "loss",
                "rmse",
                "--pred",
                "p.npy",
                "--target",
                "t.npy",
                "--weights",
                "w.npy",
            ],
        ] {
            let args = [args, &b[..]].concat();
            let whole = json_chunked(d, &args, "1000000");
            let parts = json_chunked(d, &args, "1000");
            close(&parts["value"], &whole["value"], &format!("{args:?}"));
            assert_eq!(parts["n"], whole["n"]);
        }
        let args = [
            &[
                "metrics",
                "--pred",
                "p.npy",
                "--target",
                "t.npy",
                "--weights",
                "w.npy",
            ][..],
            &b,
        ]
        .concat();
        let (whole, parts) = (
            json_chunked(d, &args, "1000000"),
            json_chunked(d, &args, "999"),
        );
        for key in [
            "mse", "rmse", "mae", "mape", "smape", "huber", "log_cosh", "quantile",
        ] {
            close(&parts[key], &whole[key], key);
        }
        let args = [&["grad-stats", "--input", "p.npy"][..], &b].concat();
        let (whole, parts) = (
            json_chunked(d, &args, "1000000"),
            json_chunked(d, &args, "1024"),
        );
        close(&parts["l2_norm"], &whole["l2_norm"], "l2_norm");
        assert_eq!(parts["max_abs"], whole["max_abs"]);
        close(
            &parts["vanishing_fraction"],
            &whole["vanishing_fraction"],
            "vanishing",
        );
        for clip in [["--max-norm", "10"], ["--max-value", "0.75"]] {
            for (chunk, out) in [("1000000", "whole.npy"), ("1000", "parts.npy")] {
                let args = [&["clip", "--input", "p.npy", "--out", out][..], &clip, &b].concat();
                json_chunked(d, &args, chunk);
            }
            let (whole, shape) = read_npy(&d.join("whole.npy"));
            let (parts, shape2) = read_npy(&d.join("parts.npy"));
            assert_eq!(shape, shape2);
            for (i, (a, b)) in parts.iter().zip(&whole).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1e-6),
                    "{clip:?} [{i}]: {a} vs {b}"
                );
            }
        }
    }
    // Per-sample values and gradients are written chunk by chunk.
    for backend in ["cpu", "gpu"] {
        if backend == "gpu" && !gpu_available() {
            continue;
        }
        for (loss, reduction, weighted) in [
            ("mse", "none", false),
            ("huber", "none", true),
            ("mse", "mean", false),
            ("log-cosh", "mean", true),
            ("mae", "sum", true),
            ("rmse", "mean", true),
        ] {
            let mut args = vec!["loss", loss, "--pred", "p.npy", "--target", "t.npy"];
            args.extend(["--reduction", reduction, "--backend", backend]);
            if weighted {
                args.extend(["--weights", "w.npy"]);
            }
            let mut results = Vec::new();
            for (chunk, tag) in [("1000000", "whole"), ("1000", "parts")] {
                let (out, grad) = (format!("{tag}-out.npy"), format!("{tag}-grad.npy"));
                let mut a = args.clone();
                if reduction == "none" {
                    a.extend(["--out", &out]);
                }
                a.extend(["--grad-out", &grad]);
                let v = json_chunked(d, &a, chunk);
                let outs = (reduction == "none").then(|| read_npy(&d.join(&out)).0);
                results.push((v, outs, read_npy(&d.join(&grad)).0));
            }
            let what = format!("{backend} {loss} {reduction} weighted={weighted}");
            if reduction != "none" {
                close(&results[1].0["value"], &results[0].0["value"], &what);
            }
            let pairs = [
                (&results[1].1, &results[0].1),
                (&Some(results[1].2.clone()), &Some(results[0].2.clone())),
            ];
            for (got, want) in pairs {
                let (Some(got), Some(want)) = (got, want) else {
                    continue;
                };
                assert_eq!(got.len(), want.len(), "{what}");
                for (i, (a, b)) in got.iter().zip(want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-6 * b.abs() + 1e-12,
                        "{what} [{i}]: {a} vs {b}"
                    );
                }
            }
        }
    }
    let line = {
        let r = run_env(
            d,
            &[
                "loss",
                "rmse",
                "--pred",
                "p.npy",
                "--target",
                "t.npy",
                "--reduction",
                "sum",
            ],
            &[("LOSSGPU_CLI_CHUNK", "1000")],
        );
        r.stderr
    };
    assert!(line.contains("rmse is a metric"), "{line}");
    // The chunked path is the one taken past one chunk, and says so.
    for (chunk, chunked) in [("1000", true), ("1000000", false)] {
        for args in [
            &[
                "loss",
                "mse",
                "--pred",
                "p.npy",
                "--target",
                "t.npy",
                "--backend",
                "cpu",
            ][..],
            &[
                "metrics",
                "--pred",
                "p.npy",
                "--target",
                "t.npy",
                "--backend",
                "cpu",
            ],
        ] {
            let r = run_env(d, args, &[("LOSSGPU_CLI_CHUNK", chunk)]);
            assert_eq!(
                r.stdout.contains("input: read in chunks of"),
                chunked,
                "{args:?} {chunk}: {}",
                r.stdout
            );
        }
    }
    // Row losses read whole rows a chunk at a time.
    let (rows, cols) = (1001, 7);
    let z: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 31) % 89) as f32 * 0.1 - 4.0)
        .collect();
    let classes: Vec<i64> = (0..rows).map(|r| ((r * 5) % cols) as i64).collect();
    let mut dist: Vec<f32> = (0..rows * cols).map(|i| 1.0 + (i % 3) as f32).collect();
    for row in dist.chunks_mut(cols) {
        let s: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= s);
    }
    let shape = [rows as u64, cols as u64];
    write_npy(d, "z.npy", &z, &shape);
    write_npy(d, "c.npy", &classes, &[rows as u64]);
    write_npy(d, "q.npy", &dist, &shape);
    let rw: Vec<f32> = (0..rows).map(|r| (r % 4) as f32).collect();
    write_npy(d, "rw.npy", &rw, &[rows as u64]);
    for args in [
        &[
            "loss",
            "cross-entropy",
            "--pred",
            "z.npy",
            "--target",
            "c.npy",
        ][..],
        &[
            "loss",
            "cross-entropy",
            "--pred",
            "z.npy",
            "--target",
            "c.npy",
            "--weights",
            "rw.npy",
        ],
        &[
            "loss",
            "cross-entropy",
            "--pred",
            "z.npy",
            "--target",
            "q.npy",
            "--reduction",
            "sum",
        ],
        &["loss", "zero-one", "--pred", "z.npy", "--target", "c.npy"],
        &["loss", "kl-div", "--pred", "q.npy", "--target", "q.npy"],
        &["loss", "entropy", "--pred", "q.npy"],
    ] {
        let mut results = Vec::new();
        for (chunk, grad) in [("1000000", "gw.npy"), ("100", "gp.npy")] {
            let mut a = [args, &["--backend", "cpu"]].concat();
            if args[1] != "zero-one" {
                a.extend(["--grad-out", grad]);
            }
            let r = run_env(
                d,
                &[&a[..], &["--format", "json"]].concat(),
                &[("LOSSGPU_CLI_CHUNK", chunk)],
            );
            assert_eq!(r.code, Some(0), "{a:?}: {}", r.stderr);
            let v: Value = serde_json::from_str(&r.stdout).unwrap();
            let g = (args[1] != "zero-one").then(|| read_npy(&d.join(grad)).0);
            results.push((v, g));
        }
        close(
            &results[1].0["value"],
            &results[0].0["value"],
            &format!("{args:?}"),
        );
        assert_eq!(results[1].0["n"].as_u64(), Some(rows as u64));
        if let (Some(parts), Some(whole)) = (&results[1].1, &results[0].1) {
            for (i, (a, b)) in parts.iter().zip(whole).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs() + 1e-9,
                    "{args:?} grad [{i}]: {a} vs {b}"
                );
            }
        }
    }
    let mut bad = classes.clone();
    bad[950] = 7;
    write_npy(d, "bad.npy", &bad, &[rows as u64]);
    let r = run_env(
        d,
        &[
            "loss",
            "cross-entropy",
            "--pred",
            "z.npy",
            "--target",
            "bad.npy",
            "--backend",
            "cpu",
        ],
        &[("LOSSGPU_CLI_CHUNK", "100")],
    );
    assert!(
        r.stderr.contains("bad.npy") && r.stderr.contains("target[950] = 7"),
        "{}",
        r.stderr
    );
    let r = run_env(
        d,
        &[
            "loss",
            "kl-div",
            "--pred",
            "z.npy",
            "--target",
            "q.npy",
            "--backend",
            "cpu",
        ],
        &[("LOSSGPU_CLI_CHUNK", "100")],
    );
    assert!(
        r.stderr.contains("z.npy") && r.stderr.contains("pred[0] = -4.0"),
        "{}",
        r.stderr
    );
    let mut late = dist.clone();
    late[900 * cols + 3] = 1.5;
    write_npy(d, "late.npy", &late, &shape);
    let r = run_env(
        d,
        &[
            "loss",
            "kl-div",
            "--pred",
            "late.npy",
            "--target",
            "q.npy",
            "--backend",
            "cpu",
        ],
        &[("LOSSGPU_CLI_CHUNK", "100")],
    );
    let at = format!("pred[{}] = 1.5", 900 * cols + 3);
    assert!(
        r.stderr.contains("late.npy") && r.stderr.contains(&at),
        "{}",
        r.stderr
    );
    // An offender in a later chunk is named at its index in the file.
    let mut labels = vec![1.0f32; n];
    labels[7777] = 0.5;
    write_npy(d, "labels.npy", &labels, &[n as u64]);
    let r = run_env(
        d,
        &[
            "loss",
            "hinge",
            "--pred",
            "p.npy",
            "--target",
            "labels.npy",
            "--backend",
            "cpu",
        ],
        &[("LOSSGPU_CLI_CHUNK", "1000")],
    );
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("labels.npy") && r.stderr.contains("target[7777] = 0.5"),
        "{}",
        r.stderr
    );
    // f64 values below the f32 range are counted in chunks too.
    let mut tiny = t.clone();
    tiny[5000] = 1e-60;
    write_npy(d, "tiny.npy", &tiny, &[n as u64]);
    let v = json_chunked(
        d,
        &[
            "loss",
            "mse",
            "--pred",
            "p.npy",
            "--target",
            "tiny.npy",
            "--backend",
            "cpu",
        ],
        "1000",
    );
    assert_eq!(v["underflowed"].as_u64(), Some(1), "{v}");
    // Unequal lengths are found before any chunk is read.
    write_npy(d, "short.npy", &p[..n - 1], &[n as u64 - 1]);
    let r = run_env(
        d,
        &[
            "metrics",
            "--pred",
            "p.npy",
            "--target",
            "short.npy",
            "--backend",
            "cpu",
        ],
        &[("LOSSGPU_CLI_CHUNK", "1000")],
    );
    assert!(
        r.code == Some(2) && r.stderr.contains("short.npy"),
        "{}",
        r.stderr
    );
}

/// Writes `n` f32 values `f(i)` as a 1-D .npy file, a block at a time.
fn write_big_npy(path: &Path, n: usize, f: impl Fn(usize) -> f32) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n},), }}");
    let mut header = dict;
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    out.write_all(b"\x93NUMPY\x01\x00").unwrap();
    out.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
    out.write_all(header.as_bytes()).unwrap();
    let mut block = Vec::with_capacity(1 << 22);
    for start in (0..n).step_by(1 << 20) {
        block.clear();
        for i in start..(start + (1 << 20)).min(n) {
            block.extend_from_slice(&f(i).to_le_bytes());
        }
        out.write_all(&block).unwrap();
    }
    out.flush().unwrap();
}

/// Two inputs of 2^27 values (1 GiB together) evaluated under a 768 MiB
/// address-space limit: the files are read in chunks, never whole.
#[test]
#[ignore = "at scale: 1 GiB of files; run in release with --ignored"]
fn a_loss_over_files_larger_than_the_memory_limit() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let n = 1usize << 27;
    let p = |i: usize| ((i * 7919) % 2001) as f32 * 0.004 - 4.0;
    let t = |i: usize| ((i * 104_729) % 997) as f32 * 0.002 - 1.0;
    write_big_npy(&d.join("p.npy"), n, p);
    write_big_npy(&d.join("t.npy"), n, t);
    let want: f64 = (0..n)
        .map(|i| {
            let e = t(i) as f64 - p(i) as f64;
            e * e
        })
        .sum::<f64>()
        / n as f64;
    let bin = env!("CARGO_BIN_EXE_lossgpu");
    for cmd in ["loss mse", "metrics"] {
        let script = format!(
            "ulimit -v 786432; exec {bin} {cmd} --pred p.npy --target t.npy --backend cpu --format json"
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .current_dir(d)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{cmd}: {stderr}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let got = if cmd == "metrics" {
            &v["mse"]
        } else {
            &v["value"]
        };
        let got = got.as_f64().unwrap();
        assert!((got - want).abs() <= 1e-6 * want, "{cmd}: {got} vs {want}");
        assert_eq!(v["n"].as_u64(), Some(n as u64));
    }
}

#[test]
fn float16_inputs_are_read_exactly_whole_or_in_chunks() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    // 1, 0.5, -2, 65504 (the largest f16), 2^-24 (the smallest subnormal).
    let bits: [u16; 5] = [0x3C00, 0x3800, 0xC000, 0x7BFF, 0x0001];
    let want = [1.0f32, 0.5, -2.0, 65504.0, 5.960_464_5e-8];
    let n = 2000;
    let data: Vec<u8> = (0..n).flat_map(|i| bits[i % 5].to_le_bytes()).collect();
    write_raw_npy(
        d,
        "h.npy",
        &format!("{{'descr': '<f2', 'fortran_order': False, 'shape': ({n},), }}"),
        &data,
    );
    let f32s: Vec<f32> = (0..n).map(|i| want[i % 5]).collect();
    write_npy(d, "f.npy", &f32s, &[n as u64]);
    for chunk in ["1000000", "300"] {
        let v = json_chunked(
            d,
            &[
                "loss",
                "mse",
                "--pred",
                "h.npy",
                "--target",
                "f.npy",
                "--backend",
                "cpu",
            ],
            chunk,
        );
        assert_eq!(v["value"].as_f64(), Some(0.0), "chunk {chunk}: {v}");
        assert!(v.get("underflowed").is_none(), "{v}");
    }
    ok(
        d,
        &[
            "activation",
            "relu",
            "--input",
            "h.npy",
            "--out",
            "r.npy",
            "--backend",
            "cpu",
        ],
    );
    let (got, _) = read_npy(&d.join("r.npy"));
    assert_eq!(&got[..5], &[1.0, 0.5, 0.0, 65504.0, 5.960_464_5e-8]);
}

#[test]
fn clip_of_a_non_finite_norm_is_pytorch_s_or_an_error_on_request() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "g.csv", "1\nnan\n-2\n");
    for backend in ["cpu", "gpu"] {
        if backend == "gpu" && !gpu_available() {
            continue;
        }
        let v = ok_json(
            d,
            &[
                "clip",
                "--input",
                "g.csv",
                "--out",
                "o.npy",
                "--max-norm",
                "1",
                "--backend",
                backend,
            ],
        );
        assert_eq!(v["scale"], "NaN", "{backend}: {v}");
        assert!(
            read_npy(&d.join("o.npy")).0.iter().all(|x| x.is_nan()),
            "{backend}"
        );
        std::fs::remove_file(d.join("o.npy")).unwrap();
        let line = fails(
            d,
            &[
                "clip",
                "--input",
                "g.csv",
                "--out",
                "o.npy",
                "--max-norm",
                "1",
                "--error-if-nonfinite",
                "--backend",
                backend,
            ],
        );
        assert!(
            line.contains("norm is NaN") && line.contains("--error-if-nonfinite"),
            "{line}"
        );
        assert!(!d.join("o.npy").exists(), "nothing was written");
    }
}

#[test]
fn metrics_name_the_file_whose_length_does_not_match() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "p.csv", "1\n2\n3\n");
    write(d, "short.csv", "1\n2\n");
    let line = fails(d, &["metrics", "--pred", "p.csv", "--target", "short.csv"]);
    assert!(
        line.contains("short.csv") && line.contains("2 values"),
        "{line}"
    );
}

/// `--reduction batchmean` of a row loss read in chunks gives the whole
/// file's value (Σ aᵢ·ℓᵢ / rows) and gradient; `--log-input` and
/// `--log-target` give the library's kl-div; a 1-D loss refuses batchmean
/// whether streamed or not.
#[test]
fn batchmean_and_kl_log_flags_from_the_command_line() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let (rows, m) = (3_001usize, 4usize);
    let z: Vec<f32> = (0..rows * m)
        .map(|i| ((i * 37) % 101) as f32 * 0.05 - 2.5)
        .collect();
    let y: Vec<i64> = (0..rows).map(|i| ((i * 7) % m) as i64).collect();
    let a: Vec<f32> = (0..rows).map(|i| (i % 5) as f32 * 0.5).collect();
    write_npy(d, "z.npy", &z, &[rows as u64, m as u64]);
    write_npy(d, "y.npy", &y, &[rows as u64]);
    write_npy(d, "a.npy", &a, &[rows as u64]);
    let classes: Vec<u32> = y.iter().map(|&c| c as u32).collect();
    let input = lossgpu::LossInput::classes(&z, m, &classes).with_weights(&a);
    let ce = lossgpu::Loss::CrossEntropy;
    let want = lossgpu::cpu::loss_scalar(&ce, &input, lossgpu::Reduction::BatchMean).unwrap();
    let want_grad = lossgpu::cpu::loss_grad(&ce, &input, lossgpu::Reduction::BatchMean).unwrap();
    for backend in ["cpu", "gpu"] {
        if backend == "gpu" && !gpu_available() {
            continue;
        }
        for chunk in ["1000000", "1000"] {
            let args = [
                "loss",
                "cross-entropy",
                "--pred",
                "z.npy",
                "--target",
                "y.npy",
                "--weights",
                "a.npy",
                "--reduction",
                "batchmean",
                "--grad-out",
                "g.npy",
                "--backend",
                backend,
            ];
            let v = json_chunked(d, &args, chunk);
            let what = format!("{backend} chunk {chunk}");
            assert_eq!(v["reduction"], "batchmean", "{what}");
            let got = v["value"].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-5 * want.abs(),
                "{what}: {got} vs {want}"
            );
            let (g, shape) = read_npy(&d.join("g.npy"));
            assert_eq!(shape, [rows as u64, m as u64]);
            for (i, (&a, &b)) in g.iter().zip(&want_grad).enumerate() {
                assert!(
                    (a as f64 - b).abs() <= 1e-5 * b.abs() + 1e-9,
                    "{what} [{i}]"
                );
            }
        }
    }
    // kl-div on log q and log t against the library.
    let log_q: Vec<f32> = z.iter().map(|v| -(v.abs()) - 0.1).collect();
    let log_t: Vec<f32> = z.iter().map(|v| -(v * v)).collect();
    write_npy(d, "lq.npy", &log_q, &[rows as u64, m as u64]);
    write_npy(d, "lt.npy", &log_t, &[rows as u64, m as u64]);
    let kl = lossgpu::LossInput::rows(&log_q, m, &log_t)
        .with_log_input()
        .with_log_target();
    let want =
        lossgpu::cpu::loss_scalar(&lossgpu::Loss::KlDiv, &kl, lossgpu::Reduction::Sum).unwrap();
    let args = [
        "loss",
        "kl-div",
        "--pred",
        "lq.npy",
        "--target",
        "lt.npy",
        "--log-input",
        "--log-target",
        "--reduction",
        "sum",
        "--backend",
        "cpu",
    ];
    let got = json_chunked(d, &args, "1000")["value"].as_f64().unwrap();
    assert!((got - want).abs() <= 1e-6 * want.abs(), "{got} vs {want}");
    // Without --log-input the logs are out of [0, 1].
    let line = fails(
        d,
        &[
            "loss",
            "kl-div",
            "--pred",
            "lq.npy",
            "--target",
            "lt.npy",
            "--log-target",
        ],
    );
    assert!(
        line.contains("lq.npy") && line.contains("pred[0]"),
        "{line}"
    );
    // A 1-D loss takes mean: the library's message, streamed or not.
    write_npy(d, "p.npy", &a, &[rows as u64]);
    for chunk in ["1000000", "100"] {
        let r = run_env(
            d,
            &[
                "loss",
                "mse",
                "--pred",
                "p.npy",
                "--target",
                "p.npy",
                "--reduction",
                "batchmean",
            ],
            &[("LOSSGPU_CLI_CHUNK", chunk)],
        );
        assert_eq!(r.code, Some(2), "chunk {chunk}: {}", r.stdout);
        assert!(
            r.stderr
                .contains("mse: batchmean is for losses over n×m rows"),
            "chunk {chunk}: {}",
            r.stderr
        );
    }
}

/// `--pos-weight F|FILE` on 1-D and n×m multi-label bce-logits: the
/// library's values, per-row weights broadcast over the columns, `none`
/// written n×m, and the errors naming the file.
#[test]
fn pos_weight_from_the_command_line() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let (rows, m) = (50usize, 3usize);
    let z: Vec<f32> = (0..rows * m)
        .map(|i| ((i * 37) % 101) as f32 * 0.1 - 5.0)
        .collect();
    let y: Vec<f32> = (0..rows * m)
        .map(|i| ((i * 7) % 3 == 0) as u8 as f32)
        .collect();
    let a: Vec<f32> = (0..rows).map(|i| (i % 4) as f32 * 0.5).collect();
    write_npy(d, "z.npy", &z, &[rows as u64, m as u64]);
    write_npy(d, "y.npy", &y, &[rows as u64, m as u64]);
    write_npy(d, "a.npy", &a, &[rows as u64]);
    std::fs::write(d.join("pw.csv"), "1.5\n0.5\n3\n").unwrap();
    std::fs::write(d.join("pw2.csv"), "1.5\n0.5\n").unwrap();
    let pw = [1.5f32, 0.5, 3.0];
    let wide: Vec<f32> = a.iter().flat_map(|&v| std::iter::repeat_n(v, m)).collect();
    let bce = lossgpu::Loss::BceLogits;
    let per_column = lossgpu::LossInput::rows(&z, m, &y).with_pos_weight(&pw);
    for backend in ["cpu", "gpu"] {
        if backend == "gpu" && !gpu_available() {
            continue;
        }
        let b = ["--backend", backend];
        let base = ["loss", "bce-logits", "--pred", "z.npy", "--target", "y.npy"];
        // One per column, weights per row.
        let args = [
            &base[..],
            &["--pos-weight", "pw.csv", "--weights", "a.npy"],
            &b,
        ]
        .concat();
        let v = json_chunked(d, &args, "1000000");
        let inp = per_column.with_weights(&wide);
        let want = lossgpu::cpu::loss_scalar(&bce, &inp, lossgpu::Reduction::Mean).unwrap();
        close(
            &v["value"],
            &serde_json::json!(want),
            "per column, row weights",
        );
        assert_eq!(v["n"], rows * m, "n counts values");
        // One for all, as a number.
        let args = [
            &base[..],
            &["--pos-weight", "2.5", "--reduction", "sum"],
            &b,
        ]
        .concat();
        let v = json_chunked(d, &args, "1000000");
        let scalar = lossgpu::LossInput::rows(&z, m, &y).with_pos_weight(&[2.5]);
        let want = lossgpu::cpu::loss_scalar(&bce, &scalar, lossgpu::Reduction::Sum).unwrap();
        close(&v["value"], &serde_json::json!(want), "scalar");
        // none keeps the n×m shape.
        let args = [
            &base[..],
            &[
                "--pos-weight",
                "pw.csv",
                "--reduction",
                "none",
                "--out",
                "o.npy",
            ],
            &b,
        ]
        .concat();
        json_chunked(d, &args, "1000000");
        let (o, shape) = read_npy(&d.join("o.npy"));
        assert_eq!(shape, [rows as u64, m as u64]);
        let want = lossgpu::cpu::loss_per_sample(&bce, &per_column).unwrap();
        for (i, (&a, &b)) in o.iter().zip(&want).enumerate() {
            assert!(
                (a as f64 - b).abs() <= 1e-5 * b.abs() + 1e-7,
                "{backend} none [{i}]"
            );
        }
    }
    let base = ["loss", "bce-logits", "--pred", "z.npy", "--target", "y.npy"];
    let line = fails(d, &[&base[..], &["--pos-weight", "pw2.csv"]].concat());
    assert!(line.contains("2 pos weights for 3 columns"), "{line}");
    let line = fails(d, &[&base[..], &["--pos-weight", "-1"]].concat());
    assert!(line.contains("pos weight[0] = -1.0"), "{line}");
    std::fs::write(d.join("pwbad.csv"), "1.5\nnan\n3\n").unwrap();
    let line = fails(d, &[&base[..], &["--pos-weight", "pwbad.csv"]].concat());
    assert!(
        line.contains("pwbad.csv") && line.contains("pos weight[1]"),
        "{line}"
    );
    let line = fails(
        d,
        &[
            "loss",
            "mse",
            "--pred",
            "z.npy",
            "--target",
            "y.npy",
            "--pos-weight",
            "2",
        ],
    );
    assert!(line.contains("mse takes no pos weight"), "{line}");
    write_npy(d, "a7.npy", &[1.0f32; 7], &[7]);
    let line = fails(d, &[&base[..], &["--weights", "a7.npy"]].concat());
    assert!(
        line.contains("7 weights for 50 rows of 3 (150 values)"),
        "{line}"
    );
}

// ---- half precision --------------------------------------------------

/// An .npy of 2-byte values under `descr` (`<f2`, `<V2`, `|V2`).
fn write_half_npy(dir: &Path, name: &str, descr: &str, bits: &[u16], shape: &[usize]) {
    let shape = match shape {
        [n] => format!("({n},)"),
        [r, c] => format!("({r}, {c})"),
        _ => unreachable!(),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(bits.iter().flat_map(|b| b.to_le_bytes()));
    std::fs::write(dir.join(name), out).unwrap();
}

/// (descr, 2-byte values) of an .npy of 2-byte values.
fn read_half_npy(path: &Path) -> (String, Vec<u16>) {
    let bytes = std::fs::read(path).unwrap();
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let dict = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    let descr = dict.split('\'').nth(3).unwrap().to_string();
    let data = bytes[10 + len..]
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    (descr, data)
}

/// bf16 files (`<V2` and `|V2`, as numpy saves ml_dtypes.bfloat16) and f16
/// files (`<f2`) give the library's value on those halves, `--dtype`
/// reinterprets every 2-byte file, and `--out-dtype` writes f16 (`<f2`) or
/// bf16 (`<V2`) rounded to nearest even, ties included.
#[test]
fn half_files_and_out_dtype() {
    use lossgpu::{bf16, f16, Engine, Loss, LossInput, Reduction};
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let n = 37;
    let z: Vec<bf16> = (0..n)
        .map(|i| bf16::from_f32((i as f32 - 18.0) * 0.37))
        .collect();
    let y: Vec<bf16> = (0..n)
        .map(|i| bf16::from_f32((i % 3) as f32 / 2.0))
        .collect();
    let bits = |v: &[bf16]| v.iter().map(|x| x.to_bits()).collect::<Vec<u16>>();
    write_half_npy(d, "z.npy", "<V2", &bits(&z), &[n]);
    write_half_npy(d, "y.npy", "|V2", &bits(&y), &[n]);
    // The same bits as f16 data.
    write_half_npy(d, "zf.npy", "<f2", &bits(&z), &[n]);
    write_half_npy(d, "yf.npy", "<f2", &bits(&y), &[n]);
    let cpu = Engine::cpu();
    let want = |input: LossInput<bf16>| {
        cpu.loss(&Loss::Mse, &input, Reduction::Mean)
            .unwrap()
            .scalar()
            .unwrap()
    };
    let bf = want(LossInput::new(&z, &y));
    let as_f16: Vec<f16> = bits(&z).iter().map(|&b| f16::from_bits(b)).collect();
    let yf16: Vec<f16> = bits(&y).iter().map(|&b| f16::from_bits(b)).collect();
    let f16_want = cpu
        .loss(&Loss::Mse, &LossInput::new(&as_f16, &yf16), Reduction::Mean)
        .unwrap()
        .scalar()
        .unwrap();
    for backend in ["cpu", "gpu"] {
        if backend == "gpu" && !gpu_available() {
            continue;
        }
        let b = ["--backend", backend];
        let run = |extra: &[&str], p: &str, t: &str| {
            let args = [&["loss", "mse", "--pred", p, "--target", t][..], extra, &b].concat();
            let v = ok_json(d, &args);
            // The engine ran on the halves as they are.
            let dtype = match extra {
                ["--dtype", h] => h.to_string(),
                _ if p == "z.npy" => "bf16".into(),
                _ => "f16".into(),
            };
            assert_eq!(v["dtype"], dtype.as_str(), "{args:?}");
            v["value"].as_f64().unwrap()
        };
        let close = |a: f64, b: f64, what: &str| {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs(),
                "{backend} {what}: {a} vs {b}"
            )
        };
        close(run(&[], "z.npy", "y.npy"), bf, "bf16 files");
        close(run(&[], "zf.npy", "yf.npy"), f16_want, "f16 files");
        close(
            run(&["--dtype", "bf16"], "zf.npy", "yf.npy"),
            bf,
            "--dtype bf16 on <f2",
        );
        close(
            run(&["--dtype", "f16"], "z.npy", "y.npy"),
            f16_want,
            "--dtype f16 on <V2",
        );
    }
    // An activation on a bf16 file runs on the halves.
    let v = ok_json(
        d,
        &[
            "activation",
            "sigmoid",
            "--input",
            "z.npy",
            "--out",
            "s.npy",
            "--backend",
            "cpu",
        ],
    );
    assert_eq!(v["dtype"], "bf16");
    let sigmoid = lossgpu::Activation::Sigmoid;
    assert_eq!(
        read_npy(&d.join("s.npy")).0,
        cpu.activation(&sigmoid, &z).unwrap()
    );
    // Read in chunks, bf16 files give the whole file's value.
    let args = [
        "loss",
        "mse",
        "--pred",
        "z.npy",
        "--target",
        "y.npy",
        "--backend",
        "cpu",
    ];
    let parts = json_chunked(d, &args, "10");
    assert!(
        (parts["value"].as_f64().unwrap() - bf).abs() <= 1e-6 * bf.abs(),
        "{parts}"
    );
    // Ties between halves round to the even one.
    let ties: [f32; 4] = [
        1.0 + 2f32.powi(-11),       // f16: 1.0
        1.0 + 3.0 * 2f32.powi(-11), // f16: 1 + 2^-9
        1.0 + 2f32.powi(-8),        // bf16: 1.0
        1.0 + 3.0 * 2f32.powi(-8),  // bf16: 1 + 2^-6
    ];
    std::fs::write(
        d.join("x.csv"),
        ties.iter().map(|v| format!("{v:e}\n")).collect::<String>(),
    )
    .unwrap();
    let relu = ["activation", "relu", "--input", "x.csv", "--backend", "cpu"];
    ok(
        d,
        &[&relu[..], &["--out", "h.npy", "--out-dtype", "f16"]].concat(),
    );
    ok(
        d,
        &[&relu[..], &["--out", "b.npy", "--out-dtype", "bf16"]].concat(),
    );
    let (descr, h) = read_half_npy(&d.join("h.npy"));
    assert_eq!(descr, "<f2");
    let want: Vec<u16> = ties.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    assert_eq!(h, want);
    assert_eq!(f16::from_bits(h[0]).to_f32(), 1.0);
    assert_eq!(f16::from_bits(h[1]).to_f32(), 1.0 + 2f32.powi(-9));
    let (descr, b) = read_half_npy(&d.join("b.npy"));
    assert_eq!(descr, "<V2");
    assert_eq!(bf16::from_bits(b[2]).to_f32(), 1.0);
    assert_eq!(bf16::from_bits(b[3]).to_f32(), 1.0 + 2f32.powi(-6));
    // A gradient written in bf16 is the f32 gradient rounded.
    let grad = [
        "loss",
        "bce-logits",
        "--pred",
        "z.npy",
        "--target",
        "y.npy",
        "--backend",
        "cpu",
    ];
    ok(d, &[&grad[..], &["--grad-out", "g32.npy"]].concat());
    ok(
        d,
        &[&grad[..], &["--grad-out", "g16.npy", "--out-dtype", "bf16"]].concat(),
    );
    let (g32, _) = read_npy(&d.join("g32.npy"));
    let (descr, g16) = read_half_npy(&d.join("g16.npy"));
    assert_eq!(descr, "<V2");
    let want: Vec<u16> = g32.iter().map(|&v| bf16::from_f32(v).to_bits()).collect();
    assert_eq!(g16, want);
}

#[test]
fn linear_ce_from_the_command_line() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let (n, dim, v) = (23usize, 6usize, 301usize);
    let h: Vec<f32> = (0..n * dim)
        .map(|i| ((i * 37) % 101) as f32 * 0.02 - 1.0)
        .collect();
    let w: Vec<f32> = (0..v * dim)
        .map(|i| ((i * 53) % 97) as f32 * 0.01 - 0.5)
        .collect();
    let b: Vec<f32> = (0..v).map(|i| (i % 7) as f32 * 0.05).collect();
    let mut y: Vec<i64> = (0..n as i64).map(|i| (i * 31) % v as i64).collect();
    y[4] = -100;
    write_npy(d, "h.npy", &h, &[n as u64, dim as u64]);
    write_npy(d, "w.npy", &w, &[v as u64, dim as u64]);
    write_npy(d, "b.npy", &b, &[v as u64]);
    write_npy(d, "y.npy", &y, &[n as u64]);
    let labels: Vec<u32> = y.iter().map(|&l| l as u32).collect();
    let input = lossgpu::LinearInput::new(&h, &w, dim, &labels)
        .with_bias(&b)
        .with_ignore_index(-100)
        .with_label_smoothing(0.1);
    let want = lossgpu::cpu::linear::linear_cross_entropy(&input, lossgpu::Reduction::Sum).unwrap();
    let base = [
        "linear-ce",
        "--hidden",
        "h.npy",
        "--classifier",
        "w.npy",
        "--labels",
        "y.npy",
        "--bias",
        "b.npy",
        "--ignore-index",
        "-100",
        "--label-smoothing",
        "0.1",
        "--reduction",
        "sum",
    ];
    for backend in ["cpu", "gpu"] {
        if backend == "gpu" && !gpu_available() {
            continue;
        }
        let outs = [
            "--grad-hidden-out",
            "gh.npy",
            "--grad-classifier-out",
            "gw.npy",
            "--grad-bias-out",
            "gb.npy",
            "--backend",
            backend,
        ];
        let j = ok_json(d, &[&base[..], &outs].concat());
        assert_eq!(j["loss"], "linear-ce");
        assert_eq!(
            (j["n"].as_u64(), j["d"].as_u64(), j["v"].as_u64()),
            (Some(23), Some(6), Some(301))
        );
        assert_rel(value(&j), want.value[0]);
        for (file, grad, shape) in [
            ("gh.npy", &want.hidden, vec![n as u64, dim as u64]),
            ("gw.npy", &want.classifier, vec![v as u64, dim as u64]),
            ("gb.npy", &want.bias, vec![v as u64]),
        ] {
            let (got, dims) = read_npy(&d.join(file));
            assert_eq!(dims, shape, "{backend} {file}");
            assert_close(&got, grad, 1e-4);
        }
        // Row losses for none, bf16 gradients.
        let none = [
            "linear-ce",
            "--hidden",
            "h.npy",
            "--classifier",
            "w.npy",
            "--labels",
            "y.npy",
            "--ignore-index",
            "-100",
            "--reduction",
            "none",
            "--out",
            "rows.npy",
            "--grad-hidden-out",
            "gh16.npy",
            "--out-dtype",
            "bf16",
            "--backend",
            backend,
        ];
        let j = ok_json(d, &none);
        assert!(j["value"].is_null());
        let bytes = std::fs::read(d.join("gh16.npy")).unwrap();
        assert!(
            String::from_utf8_lossy(&bytes[..128]).contains("<V2"),
            "bf16 written as <V2"
        );
    }
    let line = fails(d, &[&base[..], &["--out", "o.npy"]].concat());
    assert!(line.contains("--reduction none"), "{line}");
    let line = fails(
        d,
        &[
            "linear-ce",
            "--hidden",
            "h.npy",
            "--classifier",
            "b.npy",
            "--labels",
            "y.npy",
        ],
    );
    assert!(line.contains("2-D"), "{line}");
    y[0] = v as i64;
    write_npy(d, "bad.npy", &y, &[n as u64]);
    let line = fails(
        d,
        &[
            "linear-ce",
            "--hidden",
            "h.npy",
            "--classifier",
            "w.npy",
            "--labels",
            "bad.npy",
            "--ignore-index",
            "-100",
        ],
    );
    assert!(
        line.contains("bad.npy") && line.contains("labels[0] = 301"),
        "{line}"
    );
}

/// `lossgpu sql` runs the lossgpu-sql program (here a stand-in script named
/// by LOSSGPU_SQL) with the query, the tables, --format and --backend, and
/// exits with its status; without the program it fails with one line that
/// says how to build it.
#[test]
fn sql_runs_the_lossgpu_sql_program() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let script = dir.path().join("fake-sql");
    write(
        dir.path(),
        "fake-sql",
        "#!/bin/sh\nfor a in \"$@\"; do echo \"[$a]\"; done\nexit 3\n",
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = run_env(
        dir.path(),
        &[
            "--backend",
            "cpu",
            "sql",
            "SELECT loss_mse(p, y) FROM t",
            "--table",
            "t=preds.parquet",
            "--cluster",
            "df://sched:50050",
            "--format",
            "json",
        ],
        &[("LOSSGPU_SQL", script.to_str().unwrap())],
    );
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    let args: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        args,
        [
            "[SELECT loss_mse(p, y) FROM t]",
            "[--format]",
            "[json]",
            "[--backend]",
            "[cpu]",
            "[--table]",
            "[t=preds.parquet]",
            "[--cluster]",
            "[df://sched:50050]"
        ]
    );
    let r = run_env(
        dir.path(),
        &["sql", "SELECT 1"],
        &[("LOSSGPU_SQL", "/nonexistent/lossgpu-sql")],
    );
    assert_eq!(r.code, Some(2));
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("lossgpu-sql")
            && r.stderr.contains("cargo build --release -p lossgpu-sql"),
        "{}",
        r.stderr
    );
}
