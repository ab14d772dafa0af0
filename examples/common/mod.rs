//! Shared by the examples: a fixed-seed generator and the opening lines.

#![allow(dead_code)]

use lossgpu::Engine;

/// SplitMix64 with Box–Muller normals: a fixed-seed generator, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// `--quick` on the command line: the short CI mode.
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
}

/// Opens the best engine and says which backend it is.
pub fn engine() -> Engine {
    let engine = Engine::new();
    match engine.fallback_reason() {
        Some(why) => println!("backend: cpu reference ({why})"),
        None => println!(
            "backend: {} on {}",
            engine.backend().name(),
            engine.device_name()
        ),
    }
    engine
}
