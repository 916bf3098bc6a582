//! The tables a pipeline's SQL reads. Each feed is a streaming table whose rows
//! arrive through channels that the window operator opens per window bin; the
//! partial states of a windowed aggregate come back in through a state table at
//! window close. Both find their data in the task context of one execution.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use futures::StreamExt;
use futures::channel::mpsc;

use crate::core::time::Millis;
use crate::reference::ReferenceTable;
use crate::schema::{FeedSchema, timestamp_type};

pub const WINDOW_START: &str = "window_start";
pub const WINDOW_END: &str = "window_end";

/// A feed's table schema: its fields plus `window_start` and `window_end`.
pub fn feed_table_schema(feed: &FeedSchema) -> SchemaRef {
    let mut fields: Vec<Field> = feed
        .arrow
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(WINDOW_START, timestamp_type(), false));
    fields.push(Field::new(WINDOW_END, timestamp_type(), false));
    Arc::new(Schema::new(fields))
}

/// Senders for the feed scans of one execution of a partial plan, filled as the
/// plan's scans start; one sender per scan, so a feed read twice gets every row twice.
#[derive(Debug, Default)]
pub struct BinInputs {
    senders: Mutex<HashMap<String, Vec<mpsc::UnboundedSender<RecordBatch>>>>,
    /// The bin's start: reference tables read the version in force then.
    pub as_of: Millis,
}

impl BinInputs {
    /// Inputs of a bin starting at `as_of`.
    pub fn starting(as_of: Millis) -> Self {
        BinInputs {
            senders: Mutex::default(),
            as_of,
        }
    }

    pub fn take_senders(&self) -> HashMap<String, Vec<mpsc::UnboundedSender<RecordBatch>>> {
        std::mem::take(&mut *self.senders.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The partial states handed to the final plan at window close, by stage.
#[derive(Debug, Default)]
pub struct FinalInputs {
    pub states: Mutex<HashMap<usize, Vec<RecordBatch>>>,
    /// The window's start: reference tables read the version in force then.
    pub as_of: Millis,
}

/// A reference table's scan: the rows of the version in force at the start of
/// the bin or window the plan runs for (the latest outside one).
#[derive(Debug)]
pub struct ReferencePartition {
    pub table: Arc<ReferenceTable>,
}

impl PartitionStream for ReferencePartition {
    fn schema(&self) -> &SchemaRef {
        &self.table.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let config = ctx.session_config();
        let as_of = config
            .get_extension::<BinInputs>()
            .map(|b| b.as_of)
            .or_else(|| config.get_extension::<FinalInputs>().map(|f| f.as_of))
            .unwrap_or(Millis::MAX);
        let batch = self.table.at(as_of).batch.clone();
        Box::pin(RecordBatchStreamAdapter::new(
            self.table.schema.clone(),
            futures::stream::iter([Ok(batch)]),
        ))
    }
}

#[derive(Debug)]
pub struct FeedPartition {
    pub feed: String,
    pub schema: SchemaRef,
}

impl PartitionStream for FeedPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tx, rx) = mpsc::unbounded::<RecordBatch>();
        match ctx.session_config().get_extension::<BinInputs>() {
            Some(inputs) => {
                inputs
                    .senders
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(self.feed.clone())
                    .or_default()
                    .push(tx);
            }
            // Executed outside a window bin (e.g. by a planner probe): an empty feed.
            None => drop(tx),
        }
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            rx.map(Ok),
        ))
    }
}

#[derive(Debug)]
pub struct StatePartition {
    pub stage: usize,
    pub schema: SchemaRef,
}

impl PartitionStream for StatePartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batches = ctx
            .session_config()
            .get_extension::<FinalInputs>()
            .and_then(|f| {
                f.states
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&self.stage)
            })
            .unwrap_or_default();
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(batches.into_iter().map(Ok)),
        ))
    }
}
