//! The docs list every op: each loss and activation of `ALL` has its row in
//! README.md's tables, so a new op cannot ship undocumented.

use lossgpu::{Activation, Loss};

const README: &str = include_str!("../README.md");

#[test]
fn the_readme_has_a_row_for_every_loss_and_activation() {
    let names = Loss::ALL
        .iter()
        .map(Loss::name)
        .chain(Activation::ALL.iter().map(Activation::name));
    for name in names {
        assert!(
            README.contains(&format!("\n| `{name}` |")),
            "README.md has no table row for `{name}`"
        );
    }
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
