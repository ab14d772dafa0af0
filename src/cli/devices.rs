//! `lossgpu devices`: the adapter the engine would pick, and the CPU
//! reference, which is always there.

use super::output::{Report, Value};
use super::BackendChoice;
use lossgpu::{DeviceInfo, Engine, Result};

pub fn run(backend: BackendChoice) -> Result<Report> {
    // Probe the GPU even for --backend cpu: the point is to list what
    // exists. --backend gpu makes a missing adapter an error, as elsewhere.
    let probe = match backend {
        BackendChoice::Gpu => Engine::gpu()?,
        _ => Engine::new(),
    };
    let gpu = probe.device_info();
    let default = match (backend, gpu) {
        (BackendChoice::Cpu, _) | (_, None) => "cpu",
        (_, Some(_)) => "gpu",
    };

    let cpu_name = Engine::cpu().device_name();
    let mut devices = Vec::new();
    let gpu_text = match gpu {
        Some(info) => {
            devices.push(gpu_value(info));
            format!(
                "{} (driver {}, subgroups {}, max binding {} bytes)",
                info.summary(),
                info.driver,
                if info.subgroups { "yes" } else { "no" },
                info.max_binding_bytes
            )
        }
        None => format!(
            "none ({})",
            probe
                .fallback_reason()
                .unwrap_or_else(|| "no GPU adapter".into())
        ),
    };
    devices.push(Value::Object(vec![
        ("backend".into(), Value::Str("cpu".into())),
        ("name".into(), Value::Str(cpu_name.clone())),
    ]));

    let mut report = Report::new();
    report.field(
        "devices",
        Value::List(devices),
        format!("{} device(s)", gpu.map_or(1, |_| 2)),
    );
    report.text_only("gpu", gpu_text);
    report.text_only("cpu", cpu_name);
    report.str("default", default);
    Ok(report)
}

fn gpu_value(info: &DeviceInfo) -> Value {
    let s = |v: &str| Value::Str(v.to_string());
    Value::Object(vec![
        ("backend".into(), s("gpu")),
        ("name".into(), s(&info.name)),
        ("api".into(), s(&info.api)),
        ("device_type".into(), s(&info.device_type)),
        ("driver".into(), s(&info.driver)),
        ("subgroups".into(), Value::Bool(info.subgroups)),
        (
            "max_binding_bytes".into(),
            Value::Int(info.max_binding_bytes),
        ),
        ("max_buffer_bytes".into(), Value::Int(info.max_buffer_bytes)),
    ])
}
