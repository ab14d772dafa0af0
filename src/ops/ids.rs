//! The two macros that make each op enum the single source of its facts.
//!
//! [`op_enum!`] declares a public op enum (losses, activations) with its CLI
//! names and default parameters in one row per variant, and derives `ALL`,
//! `NAMES` and `name()` from those rows: a new variant is in every list that
//! iterates `ALL` (tests, CLI help, docs) without another edit.
//!
//! [`kernel_ids!`] declares the numbers a shader switches on. Each id is the
//! position of its variant; `ops::wgsl_constants` writes every id as a named
//! WGSL constant (`TERM_HUBER`, `ROW_CE_CLASS`, …) at the top of every
//! shader, so no WGSL and no Rust outside this file spells an id as a
//! number, and two ops can never share one.

/// A public op enum whose variants carry their CLI name and default
/// parameters: `Variant { field: Type = default } => "cli-name"`.
macro_rules! op_enum {
    (
        $(#[$meta:meta])*
        pub enum $E:ident {
            $(
                $(#[$vmeta:meta])*
                $V:ident $({
                    $( $(#[$fmeta:meta])* $f:ident : $t:ty = $d:expr ),* $(,)?
                })? => $name:literal
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum $E {
            $( $(#[$vmeta])* $V $({ $( $(#[$fmeta])* $f: $t ),* })? ),*
        }

        impl $E {
            /// Every variant with its default parameters, in SPEC order.
            pub const ALL: &'static [$E] = &[ $( $E::$V $({ $($f: $d),* })? ),* ];

            /// Every CLI name, in the order of `ALL`.
            pub const NAMES: &'static [&'static str] = &[ $($name),* ];

            /// The CLI name.
            pub fn name(&self) -> &'static str {
                match self {
                    $( $E::$V { .. } => $name ),*
                }
            }

            /// The variant called `name` with its default parameters.
            fn with_defaults(name: &str) -> Option<$E> {
                Self::ALL.iter().copied().find(|op| op.name() == name)
            }
        }
    };
}
pub(crate) use op_enum;

/// A fieldless enum of kernel ids: `enum Name("PREFIX") { A, B }` gives
/// `Name::A.id() == 0` and the WGSL constant `PREFIX_A`.
macro_rules! kernel_ids {
    (
        $(#[$meta:meta])*
        $vis:vis enum $E:ident ($prefix:literal) {
            $( $(#[$vmeta:meta])* $V:ident ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        $vis enum $E {
            $( $(#[$vmeta])* $V ),*
        }

        impl $E {
            /// Every id, in order.
            #[allow(dead_code)]
            pub(crate) const ALL: &'static [$E] = &[ $($E::$V),* ];

            /// The number the shaders switch on.
            pub(crate) fn id(self) -> u32 {
                self as u32
            }

            /// The name of its WGSL constant.
            #[allow(dead_code)]
            pub(crate) fn wgsl_name(self) -> String {
                let variant = match self {
                    $( $E::$V => stringify!($V) ),*
                };
                $crate::ops::ids::constant_name($prefix, variant)
            }
        }

        impl $crate::ops::ids::KernelIds for $E {
            fn constants() -> Vec<(String, u32)> {
                Self::ALL.iter().map(|v| (v.wgsl_name(), v.id())).collect()
            }
        }
    };
}
pub(crate) use kernel_ids;

/// An enum declared with [`kernel_ids!`].
pub(crate) trait KernelIds {
    /// (WGSL constant name, id) of every variant.
    fn constants() -> Vec<(String, u32)>;
}

/// `PREFIX` + `_` + the variant in SCREAMING_SNAKE_CASE (`SmoothL1` →
/// `SMOOTH_L1`).
pub(crate) fn constant_name(prefix: &str, variant: &str) -> String {
    let mut out = String::from(prefix);
    let mut prev_lower = false;
    for c in variant.chars() {
        if c.is_ascii_uppercase() && prev_lower || out.len() == prefix.len() {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::constant_name;
    use crate::gpu::pipelines::{shader_source, Family};
    use crate::ops::activation::ActOp;
    use crate::ops::kernel_constants;
    use crate::ops::loss::{RowOp, Term};
    use naga::{Block, Statement, SwitchValue};

    /// The case values of every switch in `block`, nested ones included.
    fn switch_cases(block: &Block, out: &mut Vec<u32>) {
        for statement in block.iter() {
            match statement {
                Statement::Switch { cases, .. } => {
                    for case in cases {
                        if let SwitchValue::U32(v) = case.value {
                            out.push(v);
                        }
                        switch_cases(&case.body, out);
                    }
                }
                Statement::Block(b) => switch_cases(b, out),
                Statement::If { accept, reject, .. } => {
                    switch_cases(accept, out);
                    switch_cases(reject, out);
                }
                Statement::Loop {
                    body, continuing, ..
                } => {
                    switch_cases(body, out);
                    switch_cases(continuing, out);
                }
                _ => {}
            }
        }
    }

    fn cases_of(family: Family, function: &str) -> Vec<u32> {
        let source = shader_source(family, false);
        let module = naga::front::wgsl::parse_str(&source).expect("the shader parses");
        let (_, f) = module
            .functions
            .iter()
            .find(|(_, f)| f.name.as_deref() == Some(function))
            .unwrap_or_else(|| panic!("{} has no fn {function}", family.file()));
        let mut cases = Vec::new();
        switch_cases(&f.body, &mut cases);
        cases
    }

    #[test]
    fn every_kernel_id_has_its_case_in_each_switch() {
        let terms: Vec<_> = Term::ALL.iter().map(|t| (t.wgsl_name(), t.id())).collect();
        let acts: Vec<_> = ActOp::ALL.iter().map(|a| (a.wgsl_name(), a.id())).collect();
        let rows: Vec<_> = RowOp::ALL.iter().map(|r| (r.wgsl_name(), r.id())).collect();
        type Ids<'a> = &'a [(String, u32)];
        let switches: [(Family, &str, Ids); 5] = [
            (Family::Loss, "loss_term", &terms),
            (Family::Loss, "loss_term_grad", &terms),
            (Family::Activation, "forward", &acts),
            (Family::Activation, "derivative", &acts),
            (Family::Rows, "grad_at", &rows),
        ];
        for (family, function, ids) in switches {
            let cases = cases_of(family, function);
            for (name, id) in ids.iter() {
                assert!(
                    cases.contains(id),
                    "{}: fn {function} has no case {name}",
                    family.file()
                );
            }
        }
    }

    #[test]
    fn the_case_check_sees_a_missing_case() {
        let cases = cases_of(Family::Loss, "loss_term");
        assert!(!cases.contains(&(Term::ALL.len() as u32)));
    }

    #[test]
    fn no_shader_spells_a_kernel_id_as_a_number() {
        // Ids are compared or switched on through the generated constants only.
        for family in Family::ALL {
            let source = shader_source(family, false);
            for (i, line) in source.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for key in [
                    "case ",
                    "OP == ",
                    "OP != ",
                    "PASS == ",
                    "DOMAIN == ",
                    "domain == ",
                    "mode == ",
                ] {
                    for (at, _) in code.match_indices(key) {
                        let next = code[at + key.len()..].chars().next();
                        assert!(
                            !next.is_some_and(|c| c.is_ascii_digit()),
                            "{} line {}: an id spelled as a number: {line}",
                            family.file(),
                            i + 1
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn kernel_constant_names_are_unique() {
        let all = kernel_constants();
        let mut names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }

    #[test]
    fn constant_names_are_screaming_snake_case() {
        assert_eq!(constant_name("TERM", "SmoothL1"), "TERM_SMOOTH_L1");
        assert_eq!(constant_name("TERM", "BceLogits"), "TERM_BCE_LOGITS");
        assert_eq!(constant_name("ROW", "CeClass"), "ROW_CE_CLASS");
        assert_eq!(
            constant_name("COEF", "InverseWeightSum"),
            "COEF_INVERSE_WEIGHT_SUM"
        );
        assert_eq!(constant_name("ACT", "Relu"), "ACT_RELU");
    }
}
