//! `sample_ids(event_id)`: an aggregate that keeps a few event ids of a group, so an
//! alert can point an analyst at example events without carrying every id. It keeps
//! the smallest ids: bounded state, and the same sample whatever order bins and
//! partial states merge in, so replays stay byte-identical.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

/// How many ids a group keeps.
pub const SAMPLE_SIZE: usize = 3;

/// The function's name in SQL.
pub const NAME: &str = "sample_ids";

#[derive(Debug, PartialEq, Eq, Hash)]
struct SampleIds {
    signature: Signature,
}

/// The `sample_ids` aggregate, ready to register with a session.
pub fn sample_ids() -> AggregateUDF {
    AggregateUDF::from(SampleIds {
        signature: Signature::uniform(
            1,
            vec![DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View],
            Volatility::Immutable,
        ),
    })
}

fn list_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

impl AggregateUDFImpl for SampleIds {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(list_type())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SampleAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[ids]", args.name),
            list_type(),
            true,
        ))])
    }
}

#[derive(Debug, Default)]
struct SampleAccumulator {
    ids: BTreeSet<String>,
}

impl SampleAccumulator {
    fn offer(&mut self, id: &str) {
        if self.ids.len() < SAMPLE_SIZE {
            self.ids.insert(id.to_string());
        } else if self.ids.last().is_some_and(|max| id < max.as_str()) {
            self.ids.insert(id.to_string());
            self.ids.pop_last();
        }
    }

    fn offer_strings(&mut self, array: &ArrayRef) {
        match array.data_type() {
            DataType::Utf8 => array
                .as_string::<i32>()
                .iter()
                .flatten()
                .for_each(|s| self.offer(s)),
            DataType::LargeUtf8 => array
                .as_string::<i64>()
                .iter()
                .flatten()
                .for_each(|s| self.offer(s)),
            DataType::Utf8View => array
                .as_string_view()
                .iter()
                .flatten()
                .for_each(|s| self.offer(s)),
            _ => {}
        }
    }

    fn as_list(&self) -> ScalarValue {
        let values: Vec<ScalarValue> = self
            .ids
            .iter()
            .map(|s| ScalarValue::Utf8(Some(s.clone())))
            .collect();
        ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Utf8))
    }
}

impl Accumulator for SampleAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if let Some(v) = values.first() {
            self.offer_strings(v);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        if let Some(lists) = states.first() {
            let lists = lists.as_list::<i32>();
            for i in 0..lists.len() {
                if lists.is_valid(i) {
                    self.offer_strings(&lists.value(i));
                }
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.as_list()])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.as_list())
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.ids.iter().map(|s| s.capacity() + 48).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    #[test]
    fn keeps_the_smallest_ids_whatever_the_merge_order() {
        let ids = ["e9", "e2", "e7", "e1", "e5", "e3"];
        let mut whole = SampleAccumulator::default();
        whole
            .update_batch(&[Arc::new(StringArray::from(ids.to_vec())) as ArrayRef])
            .unwrap();
        // Two partial states merged in reverse order.
        let mut parts = Vec::new();
        for chunk in ids.chunks(2).rev() {
            let mut a = SampleAccumulator::default();
            a.update_batch(&[Arc::new(StringArray::from(chunk.to_vec())) as ArrayRef])
                .unwrap();
            parts.push(a.state().unwrap().remove(0).to_array().unwrap());
        }
        let mut merged = SampleAccumulator::default();
        for p in &parts {
            merged.merge_batch(std::slice::from_ref(p)).unwrap();
        }
        assert_eq!(whole.evaluate().unwrap(), merged.evaluate().unwrap());
        let want: Vec<&str> = vec!["e1", "e2", "e3"];
        assert_eq!(
            whole.ids.iter().map(String::as_str).collect::<Vec<_>>(),
            want
        );
    }
}
