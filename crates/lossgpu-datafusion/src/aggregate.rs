//! The two accumulators every aggregate of this crate shares. Without
//! GROUP BY, [`Plain`] gathers batches to [`GATHER`] rows where a GPU may
//! evaluate them and adds the state of each gathered batch (one engine
//! call); on the CPU it adds each batch's state as it comes. With GROUP BY,
//! [`Groups`] makes one engine call per batch for every row's state and
//! adds each row to its group in f64.

use crate::engines::{gpu_may_run, GATHER};
use crate::state::State;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::compute::concat;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};
use lossgpu::Work;
use std::fmt::Debug;

/// What an aggregate computes from its argument columns.
pub(crate) trait Aggregate: Debug + Send + Sync + 'static {
    type State: State;

    /// The engine's op family of [`Aggregate::batch`]'s call, whose
    /// calibration tells whether gathering can pay.
    fn family(&self) -> Work;

    /// The work of a batch, which [`Plain`] gathers to [`GATHER`]: its
    /// rows (its logits for a row loss).
    fn work(&self, values: &[ArrayRef]) -> usize {
        values.first().map_or(0, |v| v.len())
    }

    /// The state of a batch's rows (those where no argument is NULL), from
    /// one engine call.
    fn batch(&self, values: &[ArrayRef]) -> Result<Self::State>;

    /// Each row's state, from one engine call for the batch; the default
    /// (empty) state where a NULL or the filter leaves the row out.
    fn rows(&self, values: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<Vec<Self::State>>;

    /// The aggregate's values of merged states (NULL where a state saw no
    /// rows).
    fn finish(&self, states: &[Self::State]) -> Result<ArrayRef>;
}

/// The accumulator without GROUP BY.
#[derive(Debug)]
pub(crate) struct Plain<A: Aggregate> {
    aggregate: A,
    /// Batches waiting for an engine call, column by column.
    pending: Vec<Vec<ArrayRef>>,
    /// Their work.
    pending_work: usize,
    /// Whether batches are gathered: unknown before the first batch, then
    /// whether the large-batch engine may run this family on a GPU.
    gather: Option<bool>,
    state: A::State,
}

impl<A: Aggregate> Plain<A> {
    pub(crate) fn new(aggregate: A) -> Self {
        Plain {
            aggregate,
            pending: Vec::new(),
            pending_work: 0,
            gather: None,
            state: A::State::default(),
        }
    }

    /// One engine call over the pending batches, concatenated.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let columns = std::mem::take(&mut self.pending)
            .iter()
            .map(|parts| {
                let parts: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                Ok(concat(&parts)?)
            })
            .collect::<Result<Vec<_>>>()?;
        self.pending_work = 0;
        self.state = self.state.merge(self.aggregate.batch(&columns)?);
        // The first gathered call of a family calibrates Engine::auto().
        self.gather = Some(gpu_may_run(self.aggregate.family()));
        Ok(())
    }
}

impl<A: Aggregate> Accumulator for Plain<A> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let work = self.aggregate.work(values);
        let gather = *self
            .gather
            .get_or_insert_with(|| gpu_may_run(self.aggregate.family()));
        // Gathering copies every batch once: only worth it for a GPU.
        if !gather || (work >= GATHER && self.pending.is_empty()) {
            self.state = self.state.merge(self.aggregate.batch(values)?);
            return Ok(());
        }
        self.pending.resize_with(values.len(), Vec::new);
        for (p, v) in self.pending.iter_mut().zip(values) {
            p.push(v.clone());
        }
        self.pending_work += work;
        if self.pending_work >= GATHER {
            self.flush()?;
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for i in 0..states[0].len() {
            self.state = self.state.merge(A::State::row(states, i));
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.flush()?;
        A::State::columns(&[self.state])
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.flush()?;
        ScalarValue::try_from_array(&self.aggregate.finish(&[self.state])?, 0)
    }

    fn size(&self) -> usize {
        let pending: usize = self
            .pending
            .iter()
            .flatten()
            .map(|a| a.get_array_memory_size())
            .sum();
        std::mem::size_of_val(self) + pending
    }
}

/// The accumulator of GROUP BY.
#[derive(Debug)]
pub(crate) struct Groups<A: Aggregate> {
    aggregate: A,
    states: Vec<A::State>,
}

impl<A: Aggregate> Groups<A> {
    pub(crate) fn new(aggregate: A) -> Self {
        Groups {
            aggregate,
            states: Vec::new(),
        }
    }
}

impl<A: Aggregate> GroupsAccumulator for Groups<A> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.states.resize(total_num_groups, A::State::default());
        let rows = self.aggregate.rows(values, opt_filter)?;
        for (s, &g) in rows.iter().zip(group_indices) {
            self.states[g] = self.states[g].merge(*s);
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.states.resize(total_num_groups, A::State::default());
        for (i, &g) in group_indices.iter().enumerate() {
            self.states[g] = self.states[g].merge(A::State::row(values, i));
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.aggregate
            .finish(&emit_to.take_needed(&mut self.states))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(A::State::columns(&emit_to.take_needed(&mut self.states)))
    }

    /// Each row as a state of its own: DataFusion calls this when it skips
    /// partial aggregation (many groups of few rows).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        Ok(A::State::columns(&self.aggregate.rows(values, opt_filter)?))
    }

    fn size(&self) -> usize {
        self.states.capacity() * std::mem::size_of::<A::State>()
    }
}
