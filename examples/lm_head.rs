//! A bigram language model trained with fused linear + cross-entropy:
//! token embeddings E (V×d) give each token's hidden state, a classifier W
//! (V×d) and bias b score the next token, and
//! `Engine::linear_cross_entropy_and_grad` returns the loss and its
//! gradients for H, W and b without ever holding the N×V logits. ∂H is
//! scattered back into E's rows on the host, and Adam steps all three.
//!
//! The text: V tokens in C clusters (token t is in cluster t mod C); the
//! token after one of cluster c is uniform over cluster c + 1. A bigram model
//! can reach the text's entropy, ln(V/C) nats per token, from ln V at the
//! start: the loss printed falls towards it. At the end one step over many
//! tokens is taken twice, fused and with the logits held whole, to print
//! the device memory each took at its peak.
//!
//! cargo run --release --example lm_head [-- --quick]

mod common;

use common::Rng;
use lossgpu::{Engine, LinearInput, Reduction};
use std::process::exit;
use std::time::Instant;

/// Token ids of a text of `len` tokens.
fn text(rng: &mut Rng, len: usize, vocab: usize, clusters: usize) -> Vec<u32> {
    let per = vocab / clusters;
    let mut t = (rng.next_u64() % vocab as u64) as usize;
    (0..len)
        .map(|_| {
            let next = (t % clusters + 1) % clusters;
            t = next + clusters * (rng.next_u64() % per as u64) as usize;
            t as u32
        })
        .collect()
}

/// Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8) for one parameter array.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    fn new(n: usize) -> Adam {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        self.t += 1;
        let (c1, c2) = (1.0 - 0.9f32.powi(self.t), 1.0 - 0.999f32.powi(self.t));
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = 0.9 * *m + 0.1 * g;
            *v = 0.999 * *v + 0.001 * g * g;
            *p -= lr * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
        }
    }
}

fn main() -> lossgpu::Result<()> {
    let quick = common::quick();
    let started = Instant::now();
    let engine = common::engine();
    let (vocab, dim, clusters) = (512, 32, 8);
    let (batch, steps, every, eval) = if quick {
        (1024, 60, 15, 32_768)
    } else {
        (1024, 300, 50, 65_536)
    };
    let lr = 0.01f32;
    let mut rng = Rng(20_261_204);
    let tokens = text(&mut rng, 1 << 17, vocab, clusters);
    let floor = ((vocab / clusters) as f64).ln();
    println!(
        "bigram model: V={vocab} tokens, d={dim}, batches of {batch}; the text's entropy is {floor:.3} nats/token, ln V = {:.3}",
        (vocab as f64).ln()
    );

    let mut embed: Vec<f32> = (0..vocab * dim)
        .map(|_| 0.1 * rng.normal() as f32)
        .collect();
    let mut classifier = vec![0.0f32; vocab * dim];
    let mut bias = vec![0.0f32; vocab];
    let mut adam = [
        Adam::new(vocab * dim),
        Adam::new(vocab * dim),
        Adam::new(vocab),
    ];
    let (mut first, mut last) = (f64::NAN, f64::NAN);
    for step in 0..=steps {
        let start = (step * batch * 7) % (tokens.len() - batch - 1);
        let (x, y) = (
            &tokens[start..start + batch],
            &tokens[start + 1..start + batch + 1],
        );
        let hidden: Vec<f32> = x
            .iter()
            .flat_map(|&t| embed[t as usize * dim..(t as usize + 1) * dim].to_vec())
            .collect();
        let input = LinearInput::new(&hidden, &classifier, dim, y).with_bias(&bias);
        let out = engine.linear_cross_entropy_and_grad(&input, Reduction::Mean)?;
        let loss = out.value.scalar().unwrap_or(f64::NAN);
        if step == 0 {
            first = loss;
        }
        last = loss;
        if step % every == 0 {
            println!("step {step:>4}: loss {loss:.4} nats/token");
        }
        // ∂E: each token's ∂H rows added into its embedding's row.
        let mut d_embed = vec![0.0f32; vocab * dim];
        for (k, &t) in x.iter().enumerate() {
            let row = &mut d_embed[t as usize * dim..(t as usize + 1) * dim];
            for (e, g) in row.iter_mut().zip(&out.hidden[k * dim..(k + 1) * dim]) {
                *e += g;
            }
        }
        let [a, b, c] = &mut adam;
        a.step(&mut embed, &d_embed, lr);
        b.step(&mut classifier, &out.classifier, lr);
        c.step(&mut bias, out.bias.as_deref().unwrap_or(&[]), lr);
    }

    // One step over `eval` tokens, fused and materialised: the device
    // memory each takes at its peak.
    let x = &tokens[..eval];
    let y = &tokens[1..eval + 1];
    let hidden: Vec<f32> = x
        .iter()
        .flat_map(|&t| embed[t as usize * dim..(t as usize + 1) * dim].to_vec())
        .collect();
    let input = LinearInput::new(&hidden, &classifier, dim, y).with_bias(&bias);
    let peak = |e: &Engine, i: &LinearInput| -> lossgpu::Result<(u64, f64)> {
        e.reset_peak_device_memory();
        let base = e.device_memory().current_bytes;
        let t = Instant::now();
        e.linear_cross_entropy_and_grad(i, Reduction::Mean)?;
        Ok((
            e.device_memory().peak_bytes - base,
            t.elapsed().as_secs_f64(),
        ))
    };
    let (fused, tf) = peak(&engine, &input)?;
    let (whole, tm) = peak(&engine, &input.with_materialised_logits())?;
    let logits = (eval * vocab * 4) as f64 / 1e6;
    println!(
        "one step over {eval} tokens (the logits would be {logits:.0} MB): fused peak {:.1} MB in {tf:.2} s, logits held whole {:.1} MB in {tm:.2} s",
        fused as f64 / 1e6,
        whole as f64 / 1e6
    );
    if whole > 0 {
        println!(
            "fused/materialised peak device memory: {:.3}",
            fused as f64 / whole as f64
        );
    } else {
        println!("(the CPU backend holds no device memory)");
    }
    println!(
        "loss {first:.3} -> {last:.3} nats/token (floor {floor:.3}) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The claim: training lowers the loss most of the way from ln V to the
    // text's entropy.
    let share = (first - last) / (first - floor);
    let want = 0.8;
    if share.is_nan() || share < want {
        println!(
            "FAILED: the loss fell {:.0}% of the way to the floor, not {:.0}%",
            share * 100.0,
            want * 100.0
        );
        exit(1);
    }
    println!(
        "ok: the loss fell {:.0}% of the way to the text's entropy",
        share * 100.0
    );
    Ok(())
}
