//! Activation functions: the single source of truth for their names,
//! parameters, validation and shader specialisation. The CPU formulas live in
//! `src/cpu/activation.rs`, the WGSL in `shaders/activation.wgsl`.

use super::ids::{kernel_ids, op_enum};
use crate::error::{invalid, Result};

op_enum! {
    /// An activation function with its parameters (SPEC §2).
    ///
    /// Every activation has a forward value f(x), a derivative f'(x) and a
    /// backward pass `upstream ⊙ f'(x)` ([`crate::Engine::activation`],
    /// [`crate::Engine::activation_derivative`], [`crate::Engine::activation_backward`]).
    /// [`Activation::ALL`] lists every activation with its default parameters.
    #[derive(Debug, Clone, Copy, PartialEq)]
    #[non_exhaustive]
    pub enum Activation {
        /// σ(x) = 1/(1+e^{−x}), evaluated from e^{−|x|} so no finite x overflows.
        /// f'(x) = f(1−f), evaluated as e^{−|x|}/(1+e^{−|x|})² (exact in the tails).
        Sigmoid => "sigmoid",
        /// tanh(x) = sign(x)·(−expm1(−2|x|))/(2+expm1(−2|x|)): finite for every x
        /// (some drivers' built-in tanh returns NaN past |x| ≈ 43). f'(x) = 1 − f²,
        /// evaluated as sech²(x) = 4σ'(2x) so it does not cancel in the tails.
        Tanh => "tanh",
        /// max(0, x); f'(x) = 1 if x > 0 else 0.
        Relu => "relu",
        /// x if x > 0 else αx; f'(x) = 1 or α (α at x = 0). Default α = 0.01.
        LeakyRelu {
            /// Slope for x ≤ 0.
            alpha: f32 = 0.01,
        } => "leaky-relu",
        /// Parametric ReLU: as leaky-relu with a learnable α (default 0.25).
        /// d f/d α = x for x ≤ 0 else 0; see [`crate::Engine::prelu_alpha_grad`].
        Prelu {
            /// Slope for x ≤ 0.
            alpha: f32 = 0.25,
        } => "prelu",
        /// Randomised leaky ReLU. In training α ~ U(lower, upper) is drawn per
        /// element from a counter-based generator keyed by (seed, index), so the
        /// GPU and the CPU draw the same α ([`rrelu_alpha`]); in evaluation
        /// α = (lower+upper)/2. f'(x) = 1 or the α used.
        Rrelu {
            /// Lower bound of α (default 1/8).
            lower: f32 = 1.0 / 8.0,
            /// Upper bound of α (default 1/3).
            upper: f32 = 1.0 / 3.0,
            /// Training mode: random α per element.
            training: bool = false,
            /// Key of the generator.
            seed: u64 = 0,
        } => "rrelu",
        /// x if x > 0 else α·expm1(x) (accurate near 0); f'(x) = 1 or f + α.
        /// Default α = 1.
        Elu {
            /// Scale of the negative part.
            alpha: f32 = 1.0,
        } => "elu",
        /// Swish x·σ(βx) (SiLU at β = 1); f'(x) = βf + σ(βx)(1 − βf).
        Swish {
            /// Slope inside the sigmoid.
            beta: f32 = 1.0,
        } => "swish",
        /// softplus(x) = max(x,0) + log1p(e^{−|x|}) (stable); f'(x) = σ(x).
        Softplus => "softplus",
    }
}

kernel_ids! {
    /// The functions of `shaders/activation.wgsl` (override `OP`).
    pub(crate) enum ActOp("ACT") {
        Sigmoid,
        Tanh,
        Relu,
        LeakyRelu,
        Prelu,
        Rrelu,
        Elu,
        Swish,
        Softplus,
    }
}

kernel_ids! {
    /// The pass of an activation to compute (override `PASS`).
    pub enum Pass("PASS") {
        /// f(x)
        Forward,
        /// f'(x)
        Derivative,
        /// upstream ⊙ f'(x)
        Backward,
    }
}

impl Pass {
    /// "" for the forward pass, "'" for the derivative, " backward".
    pub fn suffix(self) -> &'static str {
        match self {
            Pass::Forward => "",
            Pass::Derivative => "'",
            Pass::Backward => " backward",
        }
    }
}

/// Every CLI name, in SPEC order ([`Activation::NAMES`]).
pub const ACTIVATION_NAMES: &[&str] = Activation::NAMES;

/// Optional parameters as given on the command line; `None` means default.
#[derive(Debug, Clone, Copy, Default)]
pub struct ActivationParams {
    /// `--alpha`
    pub alpha: Option<f32>,
    /// `--beta`
    pub beta: Option<f32>,
    /// `--lower`
    pub lower: Option<f32>,
    /// `--upper`
    pub upper: Option<f32>,
    /// `--train`
    pub training: bool,
    /// `--seed`
    pub seed: Option<u64>,
}

impl Activation {
    /// Builds an activation from its CLI name and parameters, with SPEC
    /// defaults for those not given, and validates it.
    pub fn from_name(name: &str, p: ActivationParams) -> Result<Self> {
        let mut act = Activation::with_defaults(name).ok_or_else(|| {
            invalid!(
                "unknown activation '{name}' (expected one of: {})",
                Activation::NAMES.join(", ")
            )
        })?;
        match &mut act {
            Activation::LeakyRelu { alpha }
            | Activation::Prelu { alpha }
            | Activation::Elu { alpha } => *alpha = p.alpha.unwrap_or(*alpha),
            Activation::Swish { beta } => *beta = p.beta.unwrap_or(*beta),
            Activation::Rrelu {
                lower,
                upper,
                training,
                seed,
            } => {
                *lower = p.lower.unwrap_or(*lower);
                *upper = p.upper.unwrap_or(*upper);
                *training = p.training;
                *seed = p.seed.unwrap_or(*seed);
            }
            _ => {}
        }
        act.validate()?;
        Ok(act)
    }

    /// Checks the parameters: finite α, β; 0 ≤ lower ≤ upper for rrelu.
    pub fn validate(&self) -> Result<()> {
        let finite = |what: &str, v: f32| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(invalid!(
                    "{}: {what} must be finite, got {v:?}",
                    self.name()
                ))
            }
        };
        match *self {
            Activation::LeakyRelu { alpha }
            | Activation::Prelu { alpha }
            | Activation::Elu { alpha } => finite("--alpha", alpha),
            Activation::Swish { beta } => finite("--beta", beta),
            Activation::Rrelu { lower, upper, .. } => {
                finite("--lower", lower)?;
                finite("--upper", upper)?;
                if lower > upper {
                    return Err(invalid!(
                        "rrelu: --lower ({lower}) must not exceed --upper ({upper})"
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The function of `shaders/activation.wgsl`.
    pub(crate) fn kernel(&self) -> ActOp {
        match self {
            Activation::Sigmoid => ActOp::Sigmoid,
            Activation::Tanh => ActOp::Tanh,
            Activation::Relu => ActOp::Relu,
            Activation::LeakyRelu { .. } => ActOp::LeakyRelu,
            Activation::Prelu { .. } => ActOp::Prelu,
            Activation::Rrelu { .. } => ActOp::Rrelu,
            Activation::Elu { .. } => ActOp::Elu,
            Activation::Swish { .. } => ActOp::Swish,
            Activation::Softplus => ActOp::Softplus,
        }
    }

    /// The four f32 parameters the shader reads: (a, b, lower, upper) where a
    /// is α for the leaky family / elu and β for swish.
    pub(crate) fn shader_params(&self) -> [f32; 4] {
        match *self {
            Activation::LeakyRelu { alpha }
            | Activation::Prelu { alpha }
            | Activation::Elu { alpha } => [alpha, 0.0, 0.0, 0.0],
            Activation::Swish { beta } => [beta, 0.0, 0.0, 0.0],
            Activation::Rrelu { lower, upper, .. } => [0.0, 0.0, lower, upper],
            _ => [0.0; 4],
        }
    }

    /// (training flag, seed low word, seed high word) for rrelu.
    pub(crate) fn shader_rng(&self) -> [u32; 3] {
        match *self {
            Activation::Rrelu { training, seed, .. } => {
                [training as u32, seed as u32, (seed >> 32) as u32]
            }
            _ => [0; 3],
        }
    }
}

/// The α that rrelu uses at element `index`: in training
/// `lower + (upper − lower)·u` with u ∈ [0, 1) from [`uniform01`]`(seed, index)`,
/// computed in f32 exactly as the shader does; in evaluation (lower+upper)/2.
pub fn rrelu_alpha(lower: f32, upper: f32, training: bool, seed: u64, index: u32) -> f32 {
    if training {
        lower + (upper - lower) * uniform01(seed, index)
    } else {
        (lower + upper) * 0.5
    }
}

/// Counter-based uniform draw in [0, 1) with 24 random bits, keyed by
/// (seed, index): three rounds of the PCG output hash, the same u32
/// arithmetic as `rng_uniform` in `shaders/common.wgsl`.
pub fn uniform01(seed: u64, index: u32) -> f32 {
    let key = pcg_hash((seed as u32) ^ pcg_hash((seed >> 32) as u32));
    let h = pcg_hash(index ^ key);
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// PCG-RXS-M-XS 32-bit output permutation (Jarzynski & Olano, "Hash
/// Functions for GPU Rendering", 2020).
pub(crate) fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}
