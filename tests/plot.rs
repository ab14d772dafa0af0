//! `lossgpu plot`: every chart exists as SVG and PNG of the stated size, the
//! gallery links them, and the plotted numbers are the Engine's.

use lossgpu::{Activation, Engine, Loss, LossInput, Reduction};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const STEMS: [&str; 11] = [
    "classification",
    "regression",
    "activation-sigmoid",
    "activation-tanh",
    "activation-relu",
    "activation-leaky-relu",
    "activation-prelu",
    "activation-rrelu",
    "activation-elu",
    "activation-swish",
    "activation-softplus",
];

fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&b[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

fn series(data: &Value, stem: &str, name: &str) -> Vec<f32> {
    data[stem]["series"][name]
        .as_array()
        .unwrap_or_else(|| panic!("no series {name} in {stem}"))
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn plot_writes_every_chart_with_the_engines_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plots");
    let run = Command::new(env!("CARGO_BIN_EXE_lossgpu"))
        .args([
            "plot",
            "--out-dir",
            out.to_str().unwrap(),
            "--backend",
            "cpu",
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    for stem in STEMS {
        assert_eq!(
            png_size(&out.join(format!("{stem}.png"))),
            (800, 500),
            "{stem}.png"
        );
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg")
                && svg.contains("width=\"800\"")
                && svg.contains("height=\"500\""),
            "{stem}.svg"
        );
        assert!(
            svg.contains("<polyline") || svg.contains("<path"),
            "{stem}.svg draws no line"
        );
        assert!(
            index.contains(&format!("{stem}.svg")),
            "index.html lacks {stem}"
        );
    }
    let data: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("data.json")).unwrap()).unwrap();
    let engine = Engine::cpu();
    let x: Vec<f32> = data["classification"]["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!((x[0], x[x.len() - 1]), (-2.0, 3.0));
    let ones = vec![1.0f32; x.len()];
    let hinge = engine
        .loss(&Loss::Hinge, &LossInput::new(&x, &ones), Reduction::None)
        .unwrap();
    assert_eq!(
        series(&data, "classification", "hinge"),
        hinge.per_sample().unwrap()
    );
    let logistic = engine
        .loss(&Loss::Logistic, &LossInput::new(&x, &ones), Reduction::None)
        .unwrap();
    let log2: Vec<f32> = logistic
        .per_sample()
        .unwrap()
        .iter()
        .map(|v| v / std::f32::consts::LN_2)
        .collect();
    assert_eq!(series(&data, "classification", "logistic (log2)"), log2);
    // The log2 logistic passes through (0, 1) like the others.
    let at0 = x.iter().position(|&m| m == 0.0).unwrap();
    assert!((log2[at0] - 1.0).abs() < 1e-6);
    let e: Vec<f32> = data["regression"]["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let zeros = vec![0.0f32; e.len()];
    let q = engine
        .loss(
            &Loss::Quantile { gamma: 0.9 },
            &LossInput::new(&zeros, &e),
            Reduction::None,
        )
        .unwrap();
    assert_eq!(
        series(&data, "regression", "quantile γ=0.9"),
        q.per_sample().unwrap()
    );
    let xs: Vec<f32> = data["activation-leaky-relu"]["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let leaky = engine
        .activation(&Activation::LeakyRelu { alpha: 0.1 }, &xs)
        .unwrap();
    assert_eq!(
        series(&data, "activation-leaky-relu", "leaky-relu(x)"),
        leaky
    );
    let ds = engine
        .activation_derivative(&Activation::Sigmoid, &xs)
        .unwrap();
    assert_eq!(series(&data, "activation-sigmoid", "sigmoid'(x)"), ds);
}

#[test]
fn plot_into_an_unwritable_place_is_one_line_and_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_lossgpu"))
        .args([
            "plot",
            "--out-dir",
            file.join("sub").to_str().unwrap(),
            "--backend",
            "cpu",
        ])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&run.stderr).lines().count(), 1);
}

#[test]
fn plot_draws_with_its_own_font_or_names_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let plot = |font: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lossgpu"));
        cmd.args(["plot", "--backend", "cpu", "--out-dir"])
            .arg(dir.path().join("plots"));
        // No system font is looked for: the bundled one draws the labels.
        cmd.env_remove("LOSSGPU_FONT");
        if let Some(f) = font {
            cmd.env("LOSSGPU_FONT", f);
        }
        cmd.output().unwrap()
    };
    let run = plot(None);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let png = std::fs::read(dir.path().join("plots/classification.png")).unwrap();
    assert!(
        png.len() > 10_000,
        "a chart with labels, {} bytes",
        png.len()
    );

    let not_a_font = dir.path().join("notes.txt");
    std::fs::write(&not_a_font, "not a font").unwrap();
    let run = plot(Some(&not_a_font));
    assert_eq!(run.status.code(), Some(2));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("LOSSGPU_FONT"), "{err}");
    let run = plot(Some(&dir.path().join("missing.ttf")));
    assert_eq!(run.status.code(), Some(2));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("missing.ttf"), "{err}");
}
