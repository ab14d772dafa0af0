//! The docs cannot go stale: every `console` block of README.md and
//! docs/reference.md is run against the built `lossgpu` (trycmd, from the
//! repository root, where `examples/data/` holds their inputs) and its
//! output compared; the reference has a row for every op; and the
//! benchmark figures quoted in docs/benchmark.md are lines of the generated
//! docs/bench-lavapipe.txt, docs/bench-lm-head.txt or docs/bench-ceilings.txt. (The Rust blocks of both files are doc-tests.)

use lossgpu::{Activation, Loss};

const REFERENCE: &str = include_str!("../docs/reference.md");

#[test]
#[cfg(feature = "cli")]
fn every_command_shown_gives_the_output_shown() {
    trycmd::TestCases::new()
        .register_bin("lossgpu", trycmd::cargo::cargo_bin!("lossgpu"))
        .case("README.md")
        .case("docs/reference.md");
}

#[test]
fn the_reference_has_a_row_for_every_loss_and_activation() {
    let names = Loss::ALL
        .iter()
        .map(Loss::name)
        .chain(Activation::ALL.iter().map(Activation::name));
    for name in names {
        assert!(
            REFERENCE.contains(&format!("\n| `{name}` |")),
            "docs/reference.md has no table row for `{name}`"
        );
    }
}

#[test]
fn benchmark_figures_are_quoted_from_the_generated_run() {
    let doc = include_str!("../docs/benchmark.md");
    let run = include_str!("../docs/bench-lavapipe.txt");
    let lm_head = include_str!("../docs/bench-lm-head.txt");
    let ceilings = include_str!("../docs/bench-ceilings.txt");
    let run_lines: std::collections::HashSet<&str> = run
        .lines()
        .chain(lm_head.lines())
        .chain(ceilings.lines())
        .collect();
    let mut quoted = 0;
    for block in doc.split("```text\n").skip(1) {
        let block = block.split("```").next().unwrap_or("");
        for line in block.lines() {
            assert!(
                run_lines.contains(line),
                "docs/benchmark.md quotes a line that no generated run (docs/bench-*.txt) has:\n{line}"
            );
            quoted += 1;
        }
    }
    assert!(quoted > 10, "docs/benchmark.md quotes {quoted} lines");
}

#[test]
fn peer_figures_are_quoted_from_the_generated_run() {
    let doc = include_str!("../README.md");
    let run = include_str!("../docs/peers-cpu.txt");
    let run_lines: std::collections::HashSet<&str> = run.lines().collect();
    let section = doc
        .split("### The CPU backend against numpy, JAX and PyTorch")
        .nth(1)
        .expect("the README's peers section");
    let block = section.split("```text\n").nth(1).unwrap_or("");
    let block = block.split("```").next().unwrap_or("");
    for line in block.lines() {
        assert!(
            run_lines.contains(line),
            "README.md quotes a line that docs/peers-cpu.txt lacks:\n{line}"
        );
    }
    assert!(block.lines().count() > 10, "README.md quotes too few lines");
}

#[test]
fn every_name_round_trips() {
    for loss in Loss::ALL {
        let back = Loss::from_name(loss.name(), Default::default()).unwrap();
        assert_eq!(&back, loss);
    }
    for act in Activation::ALL {
        let back = Activation::from_name(act.name(), Default::default()).unwrap();
        assert_eq!(&back, act);
    }
    assert_eq!(Loss::NAMES.len(), Loss::ALL.len());
    assert_eq!(Activation::NAMES.len(), Activation::ALL.len());
}
