//! `lossgpu plot [--out-dir DIR]`: the seed's figures, computed through the
//! Engine and drawn with plotters as SVG and PNG (800×500), with an
//! index.html gallery and the plotted numbers in data.json.

use super::output::{Report, Value};
use super::{add_engine, open_engine, BackendChoice};
use lossgpu::{
    Activation, ActivationParams, Engine, Error, Loss, LossInput, Reduction, Result,
    ACTIVATION_NAMES,
};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Size of every chart in pixels.
pub const SIZE: (u32, u32) = (800, 500);
const POINTS: usize = 501;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the charts (created if missing).
    #[arg(long, value_name = "DIR", default_value = "plots")]
    out_dir: String,
}

/// One chart: its file stem, title, axis label, formula line, x values and
/// named series.
struct Chart {
    stem: String,
    title: String,
    x_label: &'static str,
    formula: String,
    x: Vec<f32>,
    series: Vec<(String, Vec<f32>)>,
    y_range: Option<(f32, f32)>,
}

fn grid(lo: f32, hi: f32) -> Vec<f32> {
    (0..POINTS)
        .map(|i| lo + (hi - lo) * i as f32 / (POINTS - 1) as f32)
        .collect()
}

fn per_sample(engine: &Engine, loss: &Loss, pred: &[f32], target: &[f32]) -> Result<Vec<f32>> {
    let v = engine.loss(loss, &LossInput::new(pred, target), Reduction::None)?;
    Ok(v.per_sample().map(<[f32]>::to_vec).unwrap_or_default())
}

/// Losses of the margin m = t·p with t = +1 and p = m; logistic in log base
/// 2 so it passes through (0, 1) like the others.
fn classification(engine: &Engine) -> Result<Chart> {
    let m = grid(-2.0, 3.0);
    let ones = vec![1.0f32; m.len()];
    let mut series = Vec::new();
    for loss in [
        Loss::ZeroOne,
        Loss::Hinge,
        Loss::SquaredHinge,
        Loss::Exponential,
        Loss::Logistic,
    ] {
        let mut v = per_sample(engine, &loss, &m, &ones)?;
        let mut name = loss.name().to_string();
        if loss == Loss::Logistic {
            v.iter_mut().for_each(|x| *x /= std::f32::consts::LN_2);
            name.push_str(" (log2)");
        }
        series.push((name, v));
    }
    Ok(Chart {
        stem: "classification".into(),
        title: "Classification losses against the margin y·ŷ".into(),
        x_label: "margin y·ŷ",
        formula: "zero-one 1[m ≤ 0]; hinge max(0, 1−m); squared hinge max(0, 1−m)²; exponential e^(−m); logistic log2(1 + e^(−m))".into(),
        x: m,
        series,
        y_range: Some((0.0, 4.0)),
    })
}

/// Regression losses of the error e = t − p with p = 0, t = e.
fn regression(engine: &Engine) -> Result<Chart> {
    let e = grid(-3.0, 3.0);
    let zeros = vec![0.0f32; e.len()];
    let mut series = Vec::new();
    let losses = [
        ("squared ½e²", Loss::Squared),
        ("absolute |e|", Loss::Mae),
        ("huber δ=1", Loss::Huber { delta: 1.0 }),
        ("log-cosh", Loss::LogCosh),
        ("quantile γ=0.1", Loss::Quantile { gamma: 0.1 }),
        ("quantile γ=0.5", Loss::Quantile { gamma: 0.5 }),
        ("quantile γ=0.9", Loss::Quantile { gamma: 0.9 }),
    ];
    for (name, loss) in losses {
        series.push((name.to_string(), per_sample(engine, &loss, &zeros, &e)?));
    }
    Ok(Chart {
        stem: "regression".into(),
        title: "Regression losses against the error e = y − ŷ".into(),
        x_label: "error e",
        formula: "squared ½e²; absolute |e|; huber ½e² or δ(|e| − ½δ); log-cosh log(cosh e); quantile γe or (γ−1)e".into(),
        x: e,
        series,
        y_range: Some((0.0, 4.5)),
    })
}

fn activation_formula(act: &Activation) -> &'static str {
    match act {
        Activation::Sigmoid => "σ(x) = 1/(1+e^(−x)); σ' = σ(1−σ) ≤ 0.25",
        Activation::Tanh => "tanh x; tanh' = 1 − tanh²",
        Activation::Relu => "max(0, x); 1 if x > 0 else 0",
        Activation::LeakyRelu { .. } => "x or αx (α = 0.1); 1 or α",
        Activation::Prelu { .. } => "x or αx with α learned (0.25); 1 or α",
        Activation::Rrelu { .. } => {
            "x or αx, α ~ U(1/8, 1/3) in training; evaluation: α = (1/8+1/3)/2"
        }
        Activation::Elu { .. } => "x or α(e^x − 1) (α = 1); 1 or f + α",
        Activation::Swish { .. } => "x·σ(βx) (β = 1, SiLU); βf + σ(βx)(1 − βf)",
        _ => "log(1 + e^x); σ(x)",
    }
}

fn activation(engine: &Engine, name: &str) -> Result<Chart> {
    let params = ActivationParams {
        alpha: (name == "leaky-relu").then_some(0.1),
        ..ActivationParams::default()
    };
    let act = Activation::from_name(name, params)?;
    let x = grid(-4.0, 4.0);
    Ok(Chart {
        stem: format!("activation-{name}"),
        title: format!("{name} and its derivative"),
        x_label: "x",
        formula: activation_formula(&act).to_string(),
        series: vec![
            (format!("{name}(x)"), engine.activation(&act, &x)?),
            (
                format!("{name}'(x)"),
                engine.activation_derivative(&act, &x)?,
            ),
        ],
        x,
        y_range: None,
    })
}

fn range(chart: &Chart) -> (f32, f32) {
    if let Some(r) = chart.y_range {
        return r;
    }
    let vals = chart
        .series
        .iter()
        .flat_map(|s| s.1.iter())
        .filter(|v| v.is_finite());
    let (lo, hi) = vals.fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let pad = 0.05 * (hi - lo).max(1.0);
    (lo - pad, hi + pad)
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    chart: &Chart,
) -> std::result::Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let (x0, x1) = (chart.x[0], chart.x[chart.x.len() - 1]);
    let (y0, y1) = range(chart);
    let mut ctx = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    ctx.configure_mesh()
        .x_desc(chart.x_label)
        .draw()
        .map_err(err)?;
    let palette = [
        &BLUE,
        &RED,
        &GREEN,
        &MAGENTA,
        &BLACK,
        &CYAN,
        &RGBColor(230, 120, 0),
    ];
    for (k, (name, ys)) in chart.series.iter().enumerate() {
        let color = palette[k % palette.len()];
        let points = chart
            .x
            .iter()
            .zip(ys)
            .filter(|(_, y)| y.is_finite())
            .map(|(&x, &y)| (x, y.clamp(y0 - 1.0, y1 + 1.0)));
        ctx.draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    ctx.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// DejaVu Sans, cut to the characters the charts use (assets/LICENSE-DejaVu.txt).
static BUNDLED_FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");

/// The labels' font: LOSSGPU_FONT (a TrueType file) if set, else the bundled
/// one, so `plot` needs no system font and draws alike everywhere.
fn load_font() -> Result<()> {
    let bytes: &'static [u8] = match std::env::var_os("LOSSGPU_FONT") {
        Some(path) => {
            let path = Path::new(&path);
            let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
            Box::leak(bytes.into_boxed_slice())
        }
        None => BUNDLED_FONT,
    };
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| {
        Error::InvalidInput("plot: LOSSGPU_FONT is not a TrueType or OpenType font".into())
    })
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn series_json(chart: &Chart) -> Value {
    let nums = |v: &[f32]| Value::List(v.iter().map(|&x| Value::Num(x as f64)).collect());
    Value::Object(vec![
        ("x".into(), nums(&chart.x)),
        (
            "series".into(),
            Value::Object(
                chart
                    .series
                    .iter()
                    .map(|(n, v)| (n.clone(), nums(v)))
                    .collect(),
            ),
        ),
    ])
}

pub fn run(args: Args, backend: BackendChoice) -> Result<Report> {
    load_font()?;
    let dir = PathBuf::from(&args.out_dir);
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    let engine = open_engine(backend)?;
    let mut charts = vec![classification(&engine)?, regression(&engine)?];
    for name in ACTIVATION_NAMES {
        charts.push(activation(&engine, name)?);
    }
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>lossgpu plots</title>\n\
         <style>body{font-family:sans-serif;max-width:1700px;margin:auto}figure{display:inline-block;margin:8px;width:800px}\
         figcaption{font-size:14px}</style></head><body>\n<h1>lossgpu: losses and activations</h1>\n",
    );
    html.push_str(&format!(
        "<p>Computed by lossgpu on {}.</p>\n",
        engine.device_name()
    ));
    let mut data = Vec::new();
    for chart in &charts {
        let svg = dir.join(format!("{}.svg", chart.stem));
        let png = dir.join(format!("{}.png", chart.stem));
        super::io::write_via_temp(&svg, |temp| {
            draw(SVGBackend::new(temp, SIZE).into_drawing_area(), chart)
                .map_err(|e| io_err(&svg, e))
        })?;
        super::io::write_via_temp(&png, |temp| {
            draw(BitMapBackend::new(temp, SIZE).into_drawing_area(), chart)
                .map_err(|e| io_err(&png, e))
        })?;
        html.push_str(&format!(
            "<figure><img src=\"{0}.svg\" alt=\"{1}\" width=\"800\" height=\"500\"><figcaption><b>{1}</b>: {2}</figcaption></figure>\n",
            chart.stem, chart.title, chart.formula
        ));
        data.push((chart.stem.clone(), series_json(chart)));
    }
    html.push_str("</body></html>\n");
    let index = dir.join("index.html");
    super::io::write_durably(&index, html.as_bytes())?;
    let mut json = String::new();
    Value::Object(data).write_json(&mut json);
    let data_path = dir.join("data.json");
    super::io::write_durably(&data_path, json.as_bytes())?;

    let mut report = Report::new();
    report.str("out_dir", &args.out_dir);
    report.int("charts", charts.len());
    report.str("index", &index.display().to_string());
    add_engine(&mut report, &engine);
    Ok(report)
}
