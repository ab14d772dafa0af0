//! Host side of `shaders/rows.wgsl`: losses over the rows of n×m scores
//! (a workgroup per wide row, a thread per narrow one) and their gradients.

use super::buffers::{output, uniform};
use super::context::Context;
use super::dispatch::{binding, binding_of, chunks, grid, groups_for, head, max_chunk_rows};
use super::loss::Inputs;
use super::memory::Buffer;
use super::params::Coef;
use super::params::RowParams;
use super::pipelines::Family;
use super::Gpu;
use crate::error::{Error, Result};
use crate::ops::dtype::DType;
use crate::ops::loss::{Domain, RowOp};

/// A row kernel's specialisation.
#[derive(Clone, Copy)]
pub(super) struct RowKernel {
    pub op: RowOp,
    pub weighted: bool,
    /// The domains checked (and kl-div's log forms, by DOMAIN_NON_POSITIVE).
    pub pred_domain: Domain,
    pub target_domain: Domain,
    /// The ignored class target, if any.
    pub ignore: Option<u32>,
    /// Cross-entropy's class weights, label smoothing or z-loss apply.
    pub ce_options: bool,
    /// Class weights are bound.
    pub class_weights: bool,
    /// Label smoothing ε and z-loss λ.
    pub smoothing: f32,
    pub z_loss: f32,
    /// multi-margin's margin and power.
    pub margin: f32,
    pub power: u32,
    /// The rows whose number decides whether wide rows are split: the
    /// call's, or the whole call's for a slab of its rows.
    pub split_rows: usize,
}

impl RowKernel {
    fn constants(self) -> [(&'static str, u32); 7] {
        [
            ("OP", self.op.id()),
            ("HAS_WEIGHTS", self.weighted as u32),
            ("PRED_DOMAIN", self.pred_domain.id()),
            ("TARGET_DOMAIN", self.target_domain.id()),
            ("HAS_IGNORE", self.ignore.is_some() as u32),
            ("CE_OPTIONS", self.ce_options as u32),
            ("HAS_CLASS_WEIGHTS", self.class_weights as u32),
        ]
    }
}

/// The entry points of `shaders/rows.wgsl`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RowEntry {
    /// A workgroup per row: the row's loss and logsumexp.
    Loss,
    /// A thread per narrow row: the row's loss and logsumexp.
    LossSmall,
    /// A thread per element (per word of half outputs): the gradient from
    /// the row's logsumexp.
    Grad,
    /// A thread per narrow row: its logsumexp, then its gradient.
    GradSmall,
    /// A workgroup per part of a wide row: partial maxima and sums.
    Partials(usize),
    /// A thread per row: its parts merged into its loss and logsumexp.
    Merge(usize),
}

impl RowEntry {
    fn name(self) -> &'static str {
        match self {
            RowEntry::Loss => "row_loss",
            RowEntry::LossSmall => "row_loss_small",
            RowEntry::Grad => "row_grad",
            RowEntry::GradSmall => "row_grad_small",
            RowEntry::Partials(_) => "row_partials",
            RowEntry::Merge(_) => "row_merge",
        }
    }

    /// Whether the output holds one value per element rather than per row.
    fn per_element(self) -> bool {
        matches!(self, RowEntry::Grad | RowEntry::GradSmall)
    }

    /// Threads needed for `rows` rows of `cols`, as (workgroups, or threads
    /// to be grouped by 256).
    fn groups(self, ctx: &Context, rows: usize, cols: usize, out: DType) -> Result<(u32, u32)> {
        match self {
            // A thread per value, or per word of halves.
            RowEntry::Grad => grid(ctx, groups_for((rows * cols).div_ceil(4 / out.size()))),
            RowEntry::LossSmall | RowEntry::GradSmall | RowEntry::Merge(_) => {
                grid(ctx, groups_for(rows))
            }
            RowEntry::Loss => grid(ctx, rows),
            RowEntry::Partials(parts) => Ok((parts as u32, rows as u32)),
        }
    }
}

/// Rows at least this wide, when there are fewer rows than this many, are
/// cut into parts of about SPLIT_PART columns, a workgroup each.
const SPLIT_COLS: usize = 8192;
const SPLIT_ROWS: usize = 512;
const SPLIT_PART: usize = 4096;

/// The parts a wide row of a few is cut into, when its loss merges from
/// its parts' maxima, sums and terms (every row op but nll, which reads one
/// value a row) and the rows fit one binding (their parts are merged from
/// one buffer of PART_BYTES a part); decided on the kernel's split_rows.
fn split(ctx: &Context, kernel: RowKernel, cols: usize) -> Result<Option<usize>> {
    let rows = kernel.split_rows;
    if kernel.op == RowOp::Nll || cols < SPLIT_COLS || rows >= SPLIT_ROWS {
        return Ok(None);
    }
    let parts = (cols / SPLIT_PART).clamp(2, 64);
    let fits = rows <= max_chunk_rows(ctx, cols)?
        && PART_BYTES * rows * parts <= ctx.info.max_binding_bytes as usize;
    Ok(fits.then_some(parts))
}

/// Bytes of one part's statistics (row_partials' eight words).
const PART_BYTES: usize = 32;

/// Where a row pass writes: a new buffer, or (the gradient in place) the
/// logits themselves, of `dtype`.
#[derive(Clone, Copy)]
pub(super) struct RowOut<'b> {
    pub buffer: &'b Buffer,
    pub dtype: DType,
    pub in_place: bool,
}

impl<'b> RowOut<'b> {
    pub fn new(buffer: &'b Buffer, dtype: DType) -> Self {
        RowOut {
            buffer,
            dtype,
            in_place: false,
        }
    }
}

/// Rows of at most this many columns get a thread each rather than a
/// workgroup: a workgroup would leave most of its 256 invocations idle.
pub(super) const SMALL_ROW: usize = 64;

impl Gpu {
    /// row_loss over all rows: per-row losses and logsumexps.
    pub(super) fn row_losses(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: RowKernel,
        inputs: &Inputs,
        rows: usize,
        cols: usize,
    ) -> Result<(Buffer, Buffer)> {
        let out = output(&self.ctx, rows, "row losses")?;
        let lse = output(&self.ctx, 4 * rows, "row logsumexp")?;
        if let Some(parts) = split(&self.ctx, kernel, cols)? {
            let partials = output(&self.ctx, PART_BYTES / 4 * rows * parts, "row partials")?;
            let (one, lse_out) = (Coef::Scale(1.0), RowOut::new(&out, DType::F32));
            let entry = RowEntry::Partials(parts);
            let to = RowOut::new(&partials, DType::F32);
            self.row_pass(
                encoder, entry, kernel, inputs, rows, cols, to, &lse, None, one,
            )?;
            let entry = RowEntry::Merge(parts);
            let stats = Some(&partials);
            self.row_pass(
                encoder, entry, kernel, inputs, rows, cols, lse_out, &lse, stats, one,
            )?;
            return Ok((out, lse));
        }
        // Narrow rows: a thread per row; wide rows: a workgroup per row.
        let entry = if cols <= SMALL_ROW {
            RowEntry::LossSmall
        } else {
            RowEntry::Loss
        };
        self.row_pass(
            encoder,
            entry,
            kernel,
            inputs,
            rows,
            cols,
            RowOut::new(&out, DType::F32),
            &lse,
            None,
            Coef::Scale(1.0),
        )?;
        Ok((out, lse))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn row_pass(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        entry: RowEntry,
        kernel: RowKernel,
        inputs: &Inputs,
        rows: usize,
        cols: usize,
        out: RowOut,
        lse: &Buffer,
        stats: Option<&Buffer>,
        coef: Coef,
    ) -> Result<()> {
        let ctx = &self.ctx;
        let classes = kernel.op.class_target();
        let (coef_mode, scale) = coef.mode();
        let RowOut {
            buffer: out,
            dtype: out_dtype,
            in_place,
        } = out;
        let mut per_chunk = max_chunk_rows(ctx, cols)?;
        if out_dtype != DType::F32 && cols % 2 == 1 && rows > per_chunk {
            // Every chunk but the last starts a word of halves.
            if per_chunk == 1 {
                return Err(Error::Gpu(format!(
                    "a half gradient of rows of {cols} values needs two rows per binding of {} bytes",
                    ctx.info.max_binding_bytes
                )));
            }
            per_chunk &= !1;
        }
        for c in chunks(rows, per_chunk) {
            let d = inputs.dtypes;
            let (out_binding, out_skip) = if entry.per_element() {
                binding_of(ctx, out, c.start * cols, c.len * cols, out_dtype)
            } else if let RowEntry::Partials(parts) = entry {
                let words = PART_BYTES / 4 * parts;
                binding(ctx, out, words * c.start, words * c.len)
            } else {
                binding(ctx, out, c.start, c.len)
            };
            // An absent input, or pred read from `out` in place, binds the
            // unbound slot.
            let (pred, pred_skip) = if in_place {
                (head(inputs.unbound()), out_skip)
            } else {
                binding_of(ctx, inputs.pred, c.start * cols, c.len * cols, d.pred)
            };
            let unused = |rows| {
                let spare = inputs.spare.map(|s| (head(s), 0));
                spare.unwrap_or_else(|| {
                    binding_of(ctx, inputs.pred, c.start * rows, c.len * rows, d.pred)
                })
            };
            let (target, target_skip) = match inputs.target {
                Some(t) if classes => binding(ctx, t, c.start, c.len),
                Some(t) => binding_of(ctx, t, c.start * cols, c.len * cols, d.target),
                None => unused(cols),
            };
            let (weights, weight_skip) = match inputs.weights {
                Some(w) => binding_of(ctx, w, c.start, c.len, d.weights),
                None => unused(1),
            };
            let (lse_binding, lse_skip) = binding(ctx, lse, 4 * c.start, 4 * c.len);
            let params = uniform(
                ctx,
                &RowParams {
                    rows: c.len as u32,
                    cols: cols as u32,
                    base_row: c.start as u32,
                    pred_skip,
                    target_skip,
                    weight_skip,
                    out_skip,
                    lse_skip,
                    coef_mode,
                    scale,
                    ignore: kernel.ignore.unwrap_or(0),
                    smoothing: kernel.smoothing,
                    z_loss: kernel.z_loss,
                    margin: kernel.margin,
                    power: kernel.power,
                    parts: match entry {
                        RowEntry::Partials(p) | RowEntry::Merge(p) => p as u32,
                        _ => 0,
                    },
                },
            );
            let resources = vec![
                params.as_entire_binding(),
                pred,
                target,
                weights,
                out_binding,
                lse_binding,
                inputs.errors.as_entire_binding(),
                match (entry, stats) {
                    // row_merge reads the row's parts (one chunk, from 0).
                    (RowEntry::Merge(_), Some(partials)) => partials.as_entire_binding(),
                    _ => head(stats.unwrap_or(inputs.unbound())),
                },
                inputs
                    .per_class
                    .map_or_else(|| head(inputs.unbound()), |w| w.as_entire_binding()),
            ];
            let groups = entry.groups(ctx, c.len, cols, out_dtype)?;
            let out_constant = [("OUT_DTYPE", out_dtype.id()), ("IN_PLACE", in_place as u32)];
            let constants = [&kernel.constants()[..], &d.constants()[..], &out_constant].concat();
            self.run(
                encoder,
                Family::Rows,
                entry.name(),
                &constants,
                resources,
                groups,
            )?;
        }
        Ok(())
    }
}
