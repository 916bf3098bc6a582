//! Session windows. A key's events closer than the gap share a session, so a
//! session's bounds are only known per key. Rows are aggregated per key and event
//! time in gap-wide bins (the partial state keeps `window_start` = the event time);
//! when the watermark passes a multiple of the gap, the finished partial rows are
//! grouped by key, cut into sessions where consecutive times are a gap or more
//! apart, and every session whose end (last event + gap) the watermark has reached
//! is rewritten to its bounds and finalised. Open sessions keep their rows.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, TimestampMillisecondArray, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::TimestampMillisecondType;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use datafusion::error::DataFusionError;

use crate::core::time::Millis;

/// Rows of sessions that have closed, with their bounds written into the window
/// columns, and the rows of sessions still open.
pub struct SessionSplit {
    pub closed: Option<RecordBatch>,
    pub open: Option<RecordBatch>,
}

/// Splits partial-state rows into closed and open sessions at watermark `wm`.
/// `keys` are the group columns other than the window ones.
pub fn split_sessions(
    batches: &[RecordBatch],
    keys: &[usize],
    window_columns: [usize; 2],
    gap: Millis,
    wm: Millis,
) -> Result<SessionSplit, DataFusionError> {
    let Some(first) = batches.first() else {
        return Ok(SessionSplit {
            closed: None,
            open: None,
        });
    };
    let all = concat_batches(&first.schema(), batches)?;
    let n = all.num_rows();
    let converter = RowConverter::new(
        keys.iter()
            .map(|&k| SortField::new(all.column(k).data_type().clone()))
            .collect(),
    )?;
    let key_columns: Vec<ArrayRef> = keys.iter().map(|&k| all.column(k).clone()).collect();
    let rows = converter.convert_columns(&key_columns)?;
    let times = all
        .column(window_columns[0])
        .as_primitive::<TimestampMillisecondType>()
        .values()
        .clone();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by(|&a, &b| {
        rows.row(a as usize)
            .cmp(&rows.row(b as usize))
            .then(times[a as usize].cmp(&times[b as usize]))
    });
    let mut closed_idx = Vec::new();
    let mut closed_start = Vec::new();
    let mut closed_end = Vec::new();
    let mut open_idx = Vec::new();
    let mut i = 0;
    while i < n {
        // One session: same key, each time less than a gap after the previous.
        let mut j = i + 1;
        while j < n
            && rows.row(order[j] as usize) == rows.row(order[i] as usize)
            && times[order[j] as usize] < times[order[j - 1] as usize] + gap
        {
            j += 1;
        }
        let start = times[order[i] as usize];
        let end = times[order[j - 1] as usize] + gap;
        if end <= wm {
            for &r in &order[i..j] {
                closed_idx.push(r);
                closed_start.push(start);
                closed_end.push(end);
            }
        } else {
            open_idx.extend_from_slice(&order[i..j]);
        }
        i = j;
    }
    let closed = if closed_idx.is_empty() {
        None
    } else {
        let b = take_record_batch(&all, &UInt32Array::from(closed_idx))?;
        let mut cols = b.columns().to_vec();
        cols[window_columns[0]] = millis(closed_start);
        cols[window_columns[1]] = millis(closed_end);
        Some(RecordBatch::try_new(b.schema(), cols)?)
    };
    let open = if open_idx.is_empty() {
        None
    } else {
        Some(take_record_batch(&all, &UInt32Array::from(open_idx))?)
    };
    Ok(SessionSplit { closed, open })
}

fn millis(values: Vec<Millis>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(values).with_timezone("UTC"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    #[test]
    fn cuts_sessions_per_key_at_the_gap() {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let t = |v: Vec<i64>| millis(v);
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "a", "b", "a", "a"])),
                t(vec![0, 5, 3, 20, 9]),
                t(vec![0, 5, 3, 20, 9]),
                Arc::new(Int64Array::from(vec![1, 1, 1, 1, 1])),
            ],
        )
        .unwrap();
        // gap 10: a = {0, 5, 9} (ends 19), {20} (ends 30); b = {3} (ends 13).
        let split = split_sessions(&[batch], &[0], [1, 2], 10, 19).unwrap();
        let closed = split.closed.unwrap();
        assert_eq!(closed.num_rows(), 4);
        let start = closed.column(1).as_primitive::<TimestampMillisecondType>();
        let end = closed.column(2).as_primitive::<TimestampMillisecondType>();
        assert_eq!(start.values().to_vec(), vec![0, 0, 0, 3]);
        assert_eq!(end.values().to_vec(), vec![19, 19, 19, 13]);
        assert_eq!(split.open.unwrap().num_rows(), 1);
    }
}
