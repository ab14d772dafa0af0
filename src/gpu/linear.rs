//! Host side of `shaders/linear.wgsl`: fused linear + cross-entropy, the
//! vocabulary a chunk of classes at a time. The forward pass computes each
//! chunk's logits into a scratch of N × chunk values and folds them into
//! every row's running logsumexp; the backward pass recomputes them, turns
//! them into their gradient G in place, and adds G·W_c to ∂H, writes
//! G_cᵀ·H to the chunk's rows of ∂W and G's column sums to ∂b. One
//! submission, one readback.

use super::buffers::{output, packed, submit_and_read, to_f32, upload, Buffer};
use super::dispatch::{binding_of, grid, groups_for};
use super::params::LinearParams;
use super::pipelines::Family;
use super::Gpu;
use crate::error::{Error, Result};
use crate::ops::dtype::{DType, Float};
use crate::ops::linear::{LinearGrads, LinearInput, LinearShape};

/// The most logits one chunk's scratch holds: 32 MiB of f32.
const SCRATCH: usize = 1 << 23;

/// The longest sum over k one gemm dispatch takes (and the most classes a
/// chunk has, its k in ∂H += G·W_c): longer ones are cut into slices that
/// accumulate in order. lavapipe ends a shader loop after 65,535
/// iterations, which a 16-wide k step with its inner loops reaches past
/// about 50,000.
const MAX_K: usize = 1 << 14;

/// One matrix product C = op(A)·op(B) (+ C): m×k by k×n.
struct Product<'b> {
    /// (m, n, k).
    dims: (usize, usize, usize),
    /// A: its buffer, first value, row stride, dtype, stored transposed.
    a: (&'b Buffer, usize, usize, DType, bool),
    b: (&'b Buffer, usize, usize, DType, bool),
    /// C: its buffer, first value, row stride (f32).
    c: (&'b Buffer, usize, usize),
    accumulate: bool,
}

/// The buffers of one call.
struct Buffers<'b> {
    hidden: &'b Buffer,
    classifier: &'b Buffer,
    bias: Option<&'b Buffer>,
    labels: &'b Buffer,
    scratch: &'b Buffer,
    state: &'b Buffer,
    /// Two small read-write buffers for the slots a kernel does not use.
    spare: [&'b Buffer; 2],
}

impl Gpu {
    /// A checked call: its value, and with `grads` its gradients (empty
    /// otherwise), as `O`.
    pub(crate) fn linear_ce<F: Float, O: Float>(
        &self,
        input: &LinearInput<F>,
        s: &LinearShape,
        grads: bool,
    ) -> Result<LinearGrads<O>> {
        self.ctx.scoped(|| {
            let ctx = &self.ctx;
            let (n, v, d) = (s.rows, s.classes, s.dim);
            let limit = ctx.info.max_binding_bytes as usize;
            let too_big = |what: &str, bytes: usize| {
                Error::Gpu(format!(
                    "linear-ce: {what} takes {bytes} bytes, beyond this adapter's storage binding of {limit} bytes"
                ))
            };
            // H, W and their gradients are bound a slice at a time; the
            // per-row state, labels and losses whole.
            for (what, bytes) in [
                ("the row state (32 bytes a row)", 32 * n),
                ("a row of H, W or their gradients", d * 4),
            ] {
                if bytes > limit {
                    return Err(too_big(what, bytes));
                }
            }
            let chunk = if input.materialise {
                v
            } else {
                chunk_classes(n, v, d, limit)
            };
            let hidden = upload(ctx, input.hidden, "hidden")?;
            let classifier = upload(ctx, input.classifier, "classifier")?;
            let labels = upload(ctx, input.labels, "labels")?;
            let bias = input.bias.map(|b| upload(ctx, b, "bias")).transpose()?;
            let scratch = output(ctx, n * chunk, "logits chunk")?;
            let init = [-3.402_823_5e38f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0].repeat(n);
            let state = packed(ctx, &[(&init[..], 0)], 2 * n, "row state")?;
            let losses = output(ctx, n, "row losses")?;
            let spare = [output(ctx, 4, "unbound")?, output(ctx, 4, "unbound")?];
            let bufs = Buffers {
                hidden: &hidden,
                classifier: &classifier,
                bias: bias.as_ref(),
                labels: &labels,
                scratch: &scratch,
                state: &state,
                spare: [&spare[0], &spare[1]],
            };
            let mut encoder = self.encoder();
            let chunks: Vec<(usize, usize)> = (0..v)
                .step_by(chunk)
                .map(|v0| (v0, chunk.min(v - v0)))
                .collect();
            for &c in &chunks {
                self.chunk_logits(&mut encoder, F::DTYPE, s, &bufs, c)?;
                self.chunk_pass(&mut encoder, input, s, &bufs, Pass::Rows, c, None)?;
            }
            self.chunk_pass(&mut encoder, input, s, &bufs, Pass::Finish, (0, 0), Some(&losses))?;
            let mut parts = vec![(&losses, n as u64 * 4)];
            let g = if grads {
                let dh = output(ctx, n * d, "hidden gradient")?;
                let dw = output(ctx, v * d, "classifier gradient")?;
                let db = output(ctx, v, "bias gradient")?;
                for &(v0, vc) in &chunks {
                    // One chunk's logits are still in the scratch.
                    if chunks.len() > 1 {
                        self.chunk_logits(&mut encoder, F::DTYPE, s, &bufs, (v0, vc))?;
                    }
                    self.chunk_pass(&mut encoder, input, s, &bufs, Pass::Grad, (v0, vc), None)?;
                    let dtype = F::DTYPE;
                    // ∂H += G·W_c
                    self.product(
                        &mut encoder,
                        &bufs,
                        Product {
                            dims: (n, d, vc),
                            a: (&scratch, 0, vc, DType::F32, false),
                            b: (&classifier, v0 * d, d, dtype, false),
                            c: (&dh, 0, d),
                            accumulate: true,
                        },
                    )?;
                    // ∂W_c = G_cᵀ·H
                    self.product(
                        &mut encoder,
                        &bufs,
                        Product {
                            dims: (vc, d, n),
                            a: (&scratch, 0, vc, DType::F32, true),
                            b: (&hidden, 0, d, dtype, false),
                            c: (&dw, v0 * d, d),
                            accumulate: false,
                        },
                    )?;
                    if input.bias.is_some() {
                        let db = Some(&db);
                        self.chunk_pass(&mut encoder, input, s, &bufs, Pass::BiasGrad, (v0, vc), db)?;
                    }
                }
                Some((dh, dw, db))
            } else {
                None
            };
            if let Some((dh, dw, db)) = &g {
                parts.push((dh, (n * d) as u64 * 4));
                parts.push((dw, (v * d) as u64 * 4));
                parts.push((db, v as u64 * 4));
            }
            let bytes = submit_and_read(ctx, encoder, &parts)?;
            let row_losses: Vec<f64> = to_f32(&bytes[0], n).iter().map(|&l| l as f64).collect();
            let part = |k: usize, len: usize| O::narrow(to_f32(&bytes[k], len));
            Ok(LinearGrads {
                value: s.finish(&row_losses),
                hidden: if grads { part(1, n * d) } else { Vec::new() },
                classifier: if grads { part(2, v * d) } else { Vec::new() },
                bias: (grads && input.bias.is_some()).then(|| part(3, v)),
            })
        })
    }

    /// The chunk's logits H·W_cᵀ into the scratch (the bias is added as
    /// they are read), H and W stored as `dtype`.
    fn chunk_logits(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dtype: DType,
        s: &LinearShape,
        bufs: &Buffers,
        (v0, vc): (usize, usize),
    ) -> Result<()> {
        let d = s.dim;
        self.product(
            encoder,
            bufs,
            Product {
                dims: (s.rows, vc, d),
                a: (bufs.hidden, 0, d, dtype, false),
                b: (bufs.classifier, v0 * d, d, dtype, true),
                c: (bufs.scratch, 0, vc),
                accumulate: false,
            },
        )
    }

    /// C = op(A)·op(B) (+ C), cut into dispatches whose bindings fit the
    /// adapter's: blocks of C's rows and columns, and the sum over k in
    /// slices of at most MAX_K dispatched in order (each after the first
    /// accumulates).
    fn product(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        bufs: &Buffers,
        p: Product,
    ) -> Result<()> {
        let (m, n, k) = p.dims;
        let (a_buf, a0, lda, a_dtype, trans_a) = p.a;
        let (b_buf, b0, ldb, b_dtype, trans_b) = p.b;
        let (c_buf, c0, ldc) = p.c;
        let bytes = self.ctx.info.max_binding_bytes as usize;
        let fit = |dtype: DType| bytes / dtype.size();
        let (la, lb, lc) = (fit(a_dtype), fit(b_dtype), fit(DType::F32));
        // A binding holds (rows − 1)·stride + cols values of a stored block:
        // the longest k slice one row of A and one column of B allow, then
        // the most columns B and C allow, then the most rows A and C allow.
        let most = |limit: usize, stride: usize, other: usize| {
            (limit + stride).saturating_sub(other) / stride.max(1)
        };
        let mut kc = MAX_K.min(k);
        kc = kc.min(if trans_a { most(la, lda, 1) } else { la });
        kc = kc.min(if trans_b { lb } else { most(lb, ldb, 1) });
        let mut nc = n.min(lc);
        nc = nc.min(if trans_b {
            most(lb, ldb, kc)
        } else {
            lb.saturating_sub((kc.max(1) - 1) * ldb)
        });
        let mut mc = m.min(most(lc, ldc, nc));
        mc = mc.min(if trans_a {
            la.saturating_sub((kc.max(1) - 1) * lda)
        } else {
            most(la, lda, kc)
        });
        if kc == 0 || nc == 0 || mc == 0 {
            return Err(Error::Gpu(format!(
                "linear-ce: a {m}×{n} product over {k} does not fit this adapter's storage binding of {bytes} bytes"
            )));
        }
        for m0 in (0..m).step_by(mc) {
            for n0 in (0..n).step_by(nc) {
                for k0 in (0..k).step_by(kc) {
                    let a_at = a0
                        + if trans_a {
                            k0 * lda + m0
                        } else {
                            m0 * lda + k0
                        };
                    let b_at = b0
                        + if trans_b {
                            n0 * ldb + k0
                        } else {
                            k0 * ldb + n0
                        };
                    let block = Product {
                        dims: (mc.min(m - m0), nc.min(n - n0), kc.min(k - k0)),
                        a: (a_buf, a_at, lda, a_dtype, trans_a),
                        b: (b_buf, b_at, ldb, b_dtype, trans_b),
                        c: (c_buf, c0 + m0 * ldc + n0, ldc),
                        accumulate: p.accumulate || k0 > 0,
                    };
                    self.product_slice(encoder, bufs, block)?;
                }
            }
        }
        Ok(())
    }

    fn product_slice(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        bufs: &Buffers,
        p: Product,
    ) -> Result<()> {
        let ctx = &self.ctx;
        let (m, n, k) = p.dims;
        let (a_buf, a0, lda, a_dtype, trans_a) = p.a;
        let (b_buf, b0, ldb, b_dtype, trans_b) = p.b;
        let (c_buf, c0, ldc) = p.c;
        // Values from the first read to the last: (rows − 1)·stride + cols
        // of the stored shape.
        let span = |rows: usize, cols: usize, ld: usize| (rows - 1) * ld + cols;
        let a_len = if trans_a {
            span(k, m, lda)
        } else {
            span(m, k, lda)
        };
        let b_len = if trans_b {
            span(n, k, ldb)
        } else {
            span(k, n, ldb)
        };
        let (a_bind, a_skip) = binding_of(ctx, a_buf, a0, a_len, a_dtype);
        let (b_bind, b_skip) = binding_of(ctx, b_buf, b0, b_len, b_dtype);
        let (c_bind, c_skip) = binding_of(ctx, c_buf, c0, span(m, n, ldc), DType::F32);
        let params = super::buffers::uniform(
            ctx,
            &LinearParams {
                m: m as u32,
                n: n as u32,
                k: k as u32,
                lda: lda as u32,
                ldb: ldb as u32,
                ldc: ldc as u32,
                a_skip,
                b_skip,
                c_skip,
                ..Default::default()
            },
        );
        let resources = vec![
            params.as_entire_binding(),
            a_bind,
            b_bind,
            c_bind,
            bufs.spare[0].as_entire_binding(),
            bufs.labels.as_entire_binding(),
            bufs.labels.as_entire_binding(),
            bufs.spare[1].as_entire_binding(),
        ];
        let constants = [
            ("A_DTYPE", a_dtype.id()),
            ("B_DTYPE", b_dtype.id()),
            ("TRANS_A", trans_a as u32),
            ("TRANS_B", trans_b as u32),
            ("ACCUMULATE", p.accumulate as u32),
        ];
        let groups = (n.div_ceil(64) as u32, m.div_ceil(64) as u32);
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        if groups.0 > max || groups.1 > max {
            return Err(Error::Gpu(format!(
                "linear-ce: a {m}×{n} product needs {groups:?} workgroups, beyond {max} a dimension"
            )));
        }
        self.run(
            encoder,
            Family::Linear,
            "gemm",
            &constants,
            resources,
            groups,
        )
    }

    /// One of the row kernels over the scratch of chunk (v0, vc): `sums`
    /// is finish_rows' losses or bias_grad's ∂b (whose chunk it binds).
    #[allow(clippy::too_many_arguments)]
    fn chunk_pass<F: Float>(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        input: &LinearInput<F>,
        s: &LinearShape,
        bufs: &Buffers,
        pass: Pass,
        (v0, vc): (usize, usize),
        sums: Option<&Buffer>,
    ) -> Result<()> {
        let ctx = &self.ctx;
        let n = s.rows;
        // bias_grad writes the chunk's classes of ∂b; finish_rows every
        // row's loss.
        let sums_of = || match (pass, sums) {
            (Pass::BiasGrad, Some(db)) => binding_of(ctx, db, v0, vc, DType::F32),
            (_, Some(l)) => (l.as_entire_binding(), 0),
            (_, None) => (bufs.spare[1].as_entire_binding(), 0),
        };
        let scale = match s.reduction {
            crate::ops::reduction::Reduction::Mean => (1.0 / s.kept as f64) as f32,
            _ => 1.0,
        };
        // Slices of rows whose scratch fits a binding, and whose loops
        // (bias_grad's over rows) stay within MAX_K.
        let binding = ctx.info.max_binding_bytes as usize / 4;
        let per = (binding / vc.max(1)).clamp(1, MAX_K);
        for r0 in (0..n).step_by(per) {
            let rows = per.min(n - r0);
            let (sums_bind, sums_skip) = sums_of();
            let (z_bind, z_skip) =
                binding_of(ctx, bufs.scratch, r0 * vc, rows * vc.max(1), DType::F32);
            let params = super::buffers::uniform(
                ctx,
                &LinearParams {
                    m: rows as u32,
                    n: vc as u32,
                    c_skip: sums_skip,
                    v0: v0 as u32,
                    classes: s.classes as u32,
                    ignore: input.ignored().unwrap_or(0),
                    smoothing: input.label_smoothing,
                    z_loss: input.z_loss,
                    scale,
                    row0: r0 as u32,
                    z_skip,
                    ..Default::default()
                },
            );
            let resources = vec![
                params.as_entire_binding(),
                bufs.labels.as_entire_binding(),
                bufs.labels.as_entire_binding(),
                z_bind,
                bufs.state.as_entire_binding(),
                bufs.labels.as_entire_binding(),
                bufs.bias.unwrap_or(bufs.labels).as_entire_binding(),
                sums_bind,
            ];
            let constants = [
                ("BIAS_DTYPE", F::DTYPE.id()),
                ("HAS_BIAS", input.bias.is_some() as u32),
                ("HAS_IGNORE", input.ignore_index.is_some() as u32),
                ("ACCUMULATE", (r0 > 0) as u32),
            ];
            let (entry, groups) = match pass {
                Pass::Rows => ("chunk_rows", grid(ctx, rows)?),
                Pass::Finish => ("finish_rows", grid(ctx, groups_for(rows))?),
                Pass::Grad => ("chunk_grad", grid(ctx, groups_for(rows * vc))?),
                Pass::BiasGrad => ("bias_grad", grid(ctx, groups_for(vc))?),
            };
            self.run(
                encoder,
                Family::Linear,
                entry,
                &constants,
                resources,
                groups,
            )?;
        }
        Ok(())
    }
}

/// Classes per chunk: as many as keep the scratch (N × chunk f32), a chunk
/// of W and of ∂W within SCRATCH values and the binding, at least 1 and at
/// most MAX_K.
fn chunk_classes(rows: usize, classes: usize, dim: usize, binding: usize) -> usize {
    let values = (binding / 4).min(SCRATCH);
    (values / rows)
        .min(values / dim)
        .clamp(1, classes.min(MAX_K))
}

/// The kernels over a chunk's scratch.
#[derive(Clone, Copy)]
enum Pass {
    /// chunk_rows: fold the chunk's logits into the rows' state.
    Rows,
    /// finish_rows: lse and each row's loss.
    Finish,
    /// chunk_grad: the logits' gradient in place.
    Grad,
    /// bias_grad: the chunk's Σₙ G.
    BiasGrad,
}
