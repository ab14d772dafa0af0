//! Every shader module, exactly as the engine assembles it, parses and
//! validates with naga, with and without subgroup operations. Needs no GPU.

use lossgpu::{shader_source, Family};
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn validate(family: Family, subgroups: bool) -> Result<(), String> {
    let source = shader_source(family, subgroups);
    let module = naga::front::wgsl::parse_str(&source).map_err(|e| e.emit_to_string(&source))?;
    let caps = if subgroups {
        Capabilities::SUBGROUP
    } else {
        Capabilities::empty()
    };
    Validator::new(ValidationFlags::all(), caps)
        .validate(&module)
        .map_err(|e| format!("{e:?}"))?;
    Ok(())
}

#[test]
fn every_shader_validates_with_the_shared_memory_tree() {
    for family in Family::ALL {
        if let Err(e) = validate(family, false) {
            panic!("shaders/{}: {e}", family.file());
        }
    }
}

#[test]
fn every_shader_validates_with_subgroups() {
    for family in Family::ALL {
        if let Err(e) = validate(family, true) {
            panic!("shaders/{} (subgroups): {e}", family.file());
        }
    }
}

#[test]
fn a_broken_shader_is_rejected() {
    // The validator is not a rubber stamp: a type error must fail.
    let source =
        shader_source(Family::Activation, false).replace("return keep_nan(v, y);", "return 1u;");
    assert!(naga::front::wgsl::parse_str(&source)
        .ok()
        .and_then(
            |m| Validator::new(ValidationFlags::all(), Capabilities::empty())
                .validate(&m)
                .ok()
        )
        .is_none());
}
