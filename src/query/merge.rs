//! Partial states merged into partial states: the segments of one window bin
//! (each checkpoint ends the running segment of every open bin) folded into one
//! state row per key, so what a checkpoint holds grows with keys, not with how
//! many checkpoints a bin lived through. DataFusion has no aggregate mode that
//! merges states and emits states, so this drives the aggregates' accumulators
//! the way its `Final` mode does, then asks them for their state instead of
//! their value.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, UInt32Array};
use arrow::compute::{concat_batches, take};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::EmitTo;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

use super::PartialStage;

impl PartialStage {
    /// How many state columns each aggregate has, if the partial state is laid
    /// out as this module expects: the group columns, then each aggregate's
    /// state fields in order.
    fn state_widths(&self) -> Option<Vec<usize>> {
        let widths: Vec<usize> = self
            .aggregates
            .iter()
            .map(|a| a.state_fields().map(|f| f.len()))
            .collect::<Result<_, _>>()
            .ok()?;
        let columns = self.group_columns + widths.iter().sum::<usize>();
        (!widths.is_empty() && columns == self.state_schema.fields().len()).then_some(widths)
    }

    /// Folds `segments` (partial states of this stage) into one batch with one
    /// row per group. A layout this cannot merge is concatenated instead: the
    /// final aggregate merges duplicate groups either way.
    pub fn merge_states(
        &self,
        segments: &[RecordBatch],
    ) -> Result<Option<RecordBatch>, DataFusionError> {
        let segments: Vec<&RecordBatch> = segments.iter().filter(|b| b.num_rows() > 0).collect();
        if segments.is_empty() {
            return Ok(None);
        }
        let all = concat_batches(&self.state_schema, segments.iter().copied())?;
        let widths = match self.state_widths() {
            Some(widths) if segments.len() > 1 => widths,
            _ => return Ok(Some(all)),
        };
        let (first_rows, group_of) = self.groups(&all)?;
        let groups = first_rows.len();
        let firsts = UInt32Array::from(first_rows);
        let mut columns: Vec<ArrayRef> = all.columns()[..self.group_columns]
            .iter()
            .map(|c| take(c, &firsts, None))
            .collect::<Result<_, _>>()?;
        let mut at = self.group_columns;
        for (aggregate, width) in self.aggregates.iter().zip(widths) {
            let values = &all.columns()[at..at + width];
            columns.extend(merge_one(aggregate, values, &group_of, groups)?);
            at += width;
        }
        Ok(Some(RecordBatch::try_new(
            self.state_schema.clone(),
            columns,
        )?))
    }

    /// Per row of `all`, its group's index, and the first row of each group.
    fn groups(&self, all: &RecordBatch) -> Result<(Vec<u32>, Vec<usize>), DataFusionError> {
        let key_columns = &all.columns()[..self.group_columns];
        let converter = RowConverter::new(
            key_columns
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect(),
        )?;
        let rows = converter.convert_columns(key_columns)?;
        let mut index = HashMap::with_capacity(all.num_rows());
        let mut first_rows = Vec::new();
        let mut group_of = Vec::with_capacity(all.num_rows());
        for (i, row) in rows.iter().enumerate() {
            let next = first_rows.len();
            let g = *index.entry(row).or_insert_with(|| {
                first_rows.push(i as u32);
                next
            });
            group_of.push(g);
        }
        Ok((first_rows, group_of))
    }
}

/// Merges one aggregate's state columns by group and returns the merged states.
fn merge_one(
    aggregate: &Arc<AggregateFunctionExpr>,
    values: &[ArrayRef],
    group_of: &[usize],
    groups: usize,
) -> Result<Vec<ArrayRef>, DataFusionError> {
    if aggregate.groups_accumulator_supported() {
        let mut acc = aggregate.create_groups_accumulator()?;
        acc.merge_batch(values, group_of, groups)?;
        return acc.state(EmitTo::All);
    }
    // Aggregates without a groups accumulator (e.g. `sample_ids`): one
    // accumulator per group, fed that group's rows.
    let mut rows_of: Vec<Vec<u32>> = vec![Vec::new(); groups];
    for (row, g) in group_of.iter().enumerate() {
        rows_of[*g].push(row as u32);
    }
    let mut states: Vec<Vec<ScalarValue>> = Vec::with_capacity(groups);
    for rows in rows_of {
        let rows = UInt32Array::from(rows);
        let mine: Vec<ArrayRef> = values
            .iter()
            .map(|v| take(v, &rows, None))
            .collect::<Result<_, _>>()?;
        let mut acc = aggregate.create_accumulator()?;
        acc.merge_batch(&mine)?;
        states.push(acc.state()?);
    }
    (0..values.len())
        .map(|j| ScalarValue::iter_to_array(states.iter().map(|s| s[j].clone())))
        .collect()
}
