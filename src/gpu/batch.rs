//! Many losses in one submission. Small pointwise losses that share a
//! specialisation are packed into one buffer per input and reduced by two
//! dispatches in all (`reduce_segments` in loss.wgsl and reduce.wgsl); each
//! loss gets exactly the partials and fold it would get alone, so its value
//! is bit-identical to [`Gpu::loss`]. Anything else (rows, reduction none,
//! the exponential loss, inputs beyond one chunk) is recorded as by
//! [`Gpu::loss`] into the same encoder.

use super::buffers::{error_slots_for, output, packed, submit_and_read, to_f32, to_u32, upload};
use super::dispatch::{grid, head, partials_for, reduce_chunk_elements};
use super::evaluate::{Pending, Want};
use super::memory::Buffer;
use super::params::LossParams;
use super::pipelines::Family;
use super::reduce::scaled_sum;
use super::Gpu;
use crate::error::Result;
use crate::ops::dtype::{DType, Float};
use crate::ops::input::{Call, Form, LossInput, Target};
use crate::ops::loss::Term;
use crate::ops::reduction::CoefMode;
use crate::ops::reduction::{LossValue, Reduction};
use std::collections::HashMap;

/// The override constants a packed group shares.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct GroupKey {
    op: Term,
    weighted: bool,
    pred_domain: u32,
    target_domain: u32,
}

/// One packed dispatch pair and where its losses sit in it.
struct Group {
    key: GroupKey,
    /// Item indices, in segment order.
    items: Vec<usize>,
    /// Vec4 offset of each item in the packed buffers.
    offsets: Vec<usize>,
    vec4s: usize,
}

/// How one item is evaluated.
enum Plan {
    Packed { group: usize, segment: usize },
    Alone(Box<Pending>),
}

/// What a packed group leaves to read back.
struct Packed {
    errors: Buffer,
    results: Buffer,
    segments: usize,
}

impl Gpu {
    /// Many losses in one submission and one readback (values only).
    pub(crate) fn loss_batch<F: Float>(
        &self,
        items: &[(Call, LossInput<F>)],
    ) -> Result<Vec<LossValue>> {
        self.ctx.scoped(|| {
            let groups = self.plan_groups(items)?;
            let mut encoder = self.encoder();
            let mut plans: Vec<Option<Plan>> = (0..items.len()).map(|_| None).collect();
            let mut packs = Vec::with_capacity(groups.len());
            for (g, group) in groups.iter().enumerate() {
                packs.push(self.encode_group(&mut encoder, items, group)?);
                for (segment, &i) in group.items.iter().enumerate() {
                    plans[i] = Some(Plan::Packed { group: g, segment });
                }
            }
            for (i, (call, input)) in items.iter().enumerate() {
                if plans[i].is_none() {
                    let p = self.encode_loss(&mut encoder, call, input, Want::VALUE, None)?;
                    plans[i] = Some(Plan::Alone(Box::new(p)));
                }
            }
            let mut parts: Vec<(&Buffer, u64)> = Vec::new();
            for p in &packs {
                parts.push((&p.errors, 16 * p.segments as u64));
                parts.push((&p.results, 16 * p.segments as u64));
            }
            let alone_from = parts.len();
            for plan in plans.iter().flatten() {
                if let Plan::Alone(p) = plan {
                    parts.extend(p.parts());
                }
            }
            let bytes = submit_and_read(&self.ctx, encoder, &parts)?;
            let mut alone = bytes[alone_from..].iter();
            let mut values = Vec::with_capacity(items.len());
            for ((call, input), plan) in items.iter().zip(plans.iter().flatten()) {
                let value = match plan {
                    Plan::Packed { group, segment } => {
                        let slots = to_u32(&bytes[2 * group]);
                        let s = to_f32(&bytes[2 * group + 1], 4 * packs[*group].segments);
                        let rows = input.pred.len();
                        self.raise_value_errors(call, input, &slots[4 * segment..][..4])?;
                        let r = &s[4 * segment..][..3];
                        let wsum = if input.weights.is_some() {
                            r[1] as f64
                        } else {
                            rows as f64
                        };
                        // + 0.0: a fold turns a partial of −0 into +0.
                        let sum = scaled_sum(r) + 0.0;
                        LossValue::Scalar(call.finish(sum, wsum)?)
                    }
                    Plan::Alone(p) => {
                        let mine: Vec<Vec<u8>> =
                            alone.by_ref().take(p.parts().len()).cloned().collect();
                        self.finish_loss(call, input, p, &mine)?.0
                    }
                };
                values.push(value);
            }
            Ok(values)
        })
    }

    /// Sorts the packable items into groups that share a specialisation and
    /// fit one binding.
    fn plan_groups<F: Float>(&self, items: &[(Call, LossInput<F>)]) -> Result<Vec<Group>> {
        let chunk = reduce_chunk_elements(&self.ctx);
        let mut groups: Vec<Group> = Vec::new();
        let mut open: HashMap<GroupKey, usize> = HashMap::new();
        for (i, (call, input)) in items.iter().enumerate() {
            let (loss, shape) = (&call.loss, call.shape);
            let op = match shape.form {
                // An option (pos_weight) or half values are evaluated alone.
                Form::Pointwise(op)
                    if op != Term::Exponential
                        && !input.has_class_options()
                        && F::DTYPE == DType::F32 =>
                {
                    op
                }
                _ => continue,
            };
            if call.reduction == Reduction::None || shape.rows > chunk {
                continue;
            }
            let key = GroupKey {
                op,
                weighted: input.weights.is_some(),
                pred_domain: loss.pred_domain().id(),
                target_domain: loss.target_domain().id(),
            };
            let len4 = shape.rows.div_ceil(4);
            let g = match open.get(&key) {
                Some(&g) if (groups[g].vec4s + len4) * 4 <= chunk => g,
                _ => {
                    groups.push(Group {
                        key,
                        items: Vec::new(),
                        offsets: Vec::new(),
                        vec4s: 0,
                    });
                    open.insert(key, groups.len() - 1);
                    groups.len() - 1
                }
            };
            let group = &mut groups[g];
            group.items.push(i);
            group.offsets.push(group.vec4s);
            group.vec4s += len4;
        }
        Ok(groups)
    }

    /// Packs a group's inputs (f32 only: plan_groups) and records its two
    /// dispatches.
    fn encode_group<F: Float>(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        items: &[(Call, LossInput<F>)],
        group: &Group,
    ) -> Result<Packed> {
        let ctx = &self.ctx;
        let (mut preds, mut targets, mut weights) = (Vec::new(), Vec::new(), Vec::new());
        for (&i, &off) in group.items.iter().zip(&group.offsets) {
            let input = &items[i].1;
            preds.push((input.pred, off));
            if let Target::Values(t) = input.target {
                targets.push((t, off));
            }
            if let Some(w) = input.weights {
                weights.push((w, off));
            }
        }
        let pred = packed(ctx, &preds, group.vec4s, "packed pred")?;
        let target = packed(ctx, &targets, group.vec4s, "packed target")?;
        let weights = if group.key.weighted {
            Some(packed(ctx, &weights, group.vec4s, "packed weights")?)
        } else {
            None
        };
        let mut table = Vec::with_capacity(8 * group.items.len());
        let mut workgroups = 0usize;
        for (&i, &off) in group.items.iter().zip(&group.offsets) {
            let (call, input) = &items[i];
            let loss = &call.loss;
            let n = input.pred.len();
            let count = partials_for(n);
            table.extend_from_slice(&[
                off as u32,
                n as u32,
                workgroups as u32,
                count as u32,
                loss.param().to_bits(),
                0,
                0,
                0,
            ]);
            workgroups += count;
        }
        let segments = group.items.len();
        let table = upload(ctx, &table, "segment table")?;
        let errors = error_slots_for(ctx, segments);
        let partials = output(ctx, 4 * workgroups, "partials")?;
        let results = output(ctx, 4 * segments, "results")?;
        let constants = [
            ("OP", group.key.op.id()),
            ("HAS_TARGET", 1),
            ("HAS_WEIGHTS", group.key.weighted as u32),
            ("PRED_DOMAIN", group.key.pred_domain),
            ("TARGET_DOMAIN", group.key.target_domain),
        ];
        let params = super::buffers::uniform(
            ctx,
            &LossParams {
                n: workgroups as u32,
                base: segments as u32,
                partial_base: 0,
                coef_mode: CoefMode::Scale.id(),
                param: 0.0,
                scale: 1.0,
                ..Default::default()
            },
        );
        let resources = vec![
            params.as_entire_binding(),
            pred.as_entire_binding(),
            target.as_entire_binding(),
            weights.as_ref().unwrap_or(&pred).as_entire_binding(),
            partials.as_entire_binding(),
            errors.as_entire_binding(),
            head(&pred), // stats: unused
            table.as_entire_binding(),
            head(&pred), // per class: unused
        ];
        let g = grid(ctx, workgroups)?;
        self.run(
            encoder,
            Family::Loss,
            "reduce_segments",
            &constants,
            resources,
            g,
        )?;
        // A loss of at most 1024 values has one partial, and folding one
        // partial returns it unchanged (up to the sign of a zero, which the
        // host clears): the second pass is needed only for larger ones.
        if workgroups == segments {
            return Ok(Packed {
                errors,
                results: partials,
                segments,
            });
        }
        self.fold_partials(encoder, &partials, segments, &results, Some(&table))?;
        Ok(Packed {
            errors,
            results,
            segments,
        })
    }
}
