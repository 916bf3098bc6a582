//! Pipeline SQL on DataFusion. A pipeline's query is planned once, then split at
//! its windowed aggregate into two physical plans, the way DataFusion's
//! `AggregateExec` runs in `Partial` and `Final` modes:
//!
//! * a **partial stage** — scan → filter → projection → partial aggregate — that the
//!   window operator runs once per window bin, streaming rows in as they arrive, so
//!   the state it keeps is one partial-aggregate row per key, not the events;
//! * the **final plan** — final aggregate and everything above it (HAVING, joins of
//!   per-feed aggregates, ORDER BY) — run once per closed window over the partial
//!   states of the window's bins.
//!
//! Aggregates that cannot be split keep what they need in their state:
//! `count(DISTINCT x)` the distinct values, `median(x)` the values.

mod lookup;
mod merge;
pub mod rewrite;
pub mod sample;
pub mod tables;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::config::Dialect;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::{
    ChildrenPropertiesMode, ReplaceChildrenOptions, reset_plan_states,
};
use datafusion::physical_plan::streaming::StreamingTableExec;
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties, SendableRecordBatchStream,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;

pub use rewrite::{Period, SqlError, WindowSpec};
use tables::{
    BinInputs, FeedPartition, FinalInputs, ReferencePartition, StatePartition, WINDOW_END,
    WINDOW_START,
};

use crate::core::time::Millis;
use crate::schema::Catalog;

/// Physical optimizer rules that assume a query sees all its input at once; a
/// streaming split must not have them.
const UNSAFE_RULES: [&str; 5] = [
    "CombinePartialFinalAggregate", // would fuse the two halves we split
    "LimitedDistinctAggregation",   // limits a partial aggregate per bin
    "LimitAggregation",
    "aggregate_statistics", // answers count(*) from statistics
    "EnsureCooperative",    // yields on tokio's budget; bins are polled by hand
];

/// The half of a windowed aggregate that runs per window bin.
#[derive(Debug)]
pub struct PartialStage {
    pub plan: Arc<dyn ExecutionPlan>,
    pub feeds: BTreeSet<String>,
    pub state_schema: SchemaRef,
    /// Columns of `window_start` and `window_end` in the partial state.
    pub window_columns: [usize; 2],
    /// The partial state's first `group_columns` columns are its GROUP BY keys.
    pub group_columns: usize,
    /// Names of the GROUP BY keys other than the window (for a plain column, the
    /// feed's column name).
    pub keys: Vec<String>,
    /// The partial aggregate's functions, whose states follow the group
    /// columns (see [`PartialStage::merge_states`]).
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
}

/// A pipeline query planned and split for streaming.
#[derive(Debug)]
pub struct CompiledQuery {
    pub window: WindowSpec,
    /// Feeds the query reads (streams only, not reference tables).
    pub feeds: BTreeSet<String>,
    pub stages: Vec<PartialStage>,
    pub final_plan: Arc<dyn ExecutionPlan>,
    pub output_schema: SchemaRef,
    /// The query orders its own rows; otherwise rows of a window are sorted for determinism.
    pub ordered: bool,
    /// For each feed, the columns of its table (see [`tables::feed_table_schema`])
    /// the query reads; `None`: all of them.
    pub columns: HashMap<String, Option<BTreeSet<usize>>>,
    state: SessionState,
}

/// A running partial stage for one window bin.
pub struct RunningStage {
    pub senders: HashMap<String, Vec<futures::channel::mpsc::UnboundedSender<RecordBatch>>>,
    pub streams: Vec<SendableRecordBatchStream>,
}

fn session(catalog: &Catalog) -> Result<SessionContext, DataFusionError> {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(8192)
        .with_information_schema(false)
        .set_usize(
            "datafusion.execution.skip_partial_aggregation_probe_rows_threshold",
            usize::MAX,
        )
        .set_bool("datafusion.sql_parser.collect_spans", true)
        // Dynamic filters carry state from one execution to the next; a plan here runs once per window.
        .set_bool("datafusion.optimizer.enable_dynamic_filter_pushdown", false);
    let rules = PhysicalOptimizer::new()
        .rules
        .into_iter()
        .filter(|r| !UNSAFE_RULES.contains(&r.name()))
        .collect();
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_physical_optimizer_rules(rules)
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_udaf(sample::sample_ids());
    // Reference data the final half may join with, e.g. residents per district.
    let population_schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("district", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("population", arrow::datatypes::DataType::Int64, false),
    ]));
    let population = RecordBatch::try_new(
        population_schema.clone(),
        vec![
            Arc::new(arrow::array::StringArray::from_iter_values(
                catalog.population.keys(),
            )),
            Arc::new(arrow::array::Int64Array::from_iter_values(
                catalog.population.values().copied(),
            )),
        ],
    )?;
    ctx.register_table(
        crate::schema::POPULATION_TABLE,
        Arc::new(datafusion::datasource::MemTable::try_new(
            population_schema,
            vec![vec![population]],
        )?),
    )?;
    for (name, table) in &catalog.tables {
        let partition = Arc::new(ReferencePartition {
            table: table.clone(),
        });
        ctx.register_table(
            name.as_str(),
            Arc::new(StreamingTable::try_new(
                table.schema.clone(),
                vec![partition],
            )?),
        )?;
    }
    for (name, feed) in &catalog.feeds {
        let schema = tables::feed_table_schema(feed);
        let partition = Arc::new(FeedPartition {
            feed: name.clone(),
            schema: schema.clone(),
        });
        ctx.register_table(
            name.as_str(),
            Arc::new(StreamingTable::try_new(schema, vec![partition])?),
        )?;
    }
    Ok(ctx)
}

/// Plans `sql` over the catalog's feeds and splits it for streaming. Errors are
/// located in the SQL text (1-based line and column).
pub async fn compile(sql: &str, catalog: &Catalog) -> Result<CompiledQuery, Vec<SqlError>> {
    let plan_err = |e: DataFusionError| vec![locate(&e, sql)];
    let ctx = session(catalog).map_err(plan_err)?;
    let state = ctx.state();
    let mut statement = state
        .sql_to_statement(sql, &Dialect::Generic)
        .map_err(plan_err)?;
    let DfStatement::Statement(inner) = &mut statement else {
        return Err(vec![at_start("a pipeline's sql is one SELECT query")]);
    };
    let Statement::Query(query) = inner.as_mut() else {
        return Err(vec![at_start("a pipeline's sql is one SELECT query")]);
    };
    let ordered = query.order_by.is_some();
    let window = rewrite::rewrite_windows(query)?;
    let logical = state.statement_to_plan(statement).await.map_err(plan_err)?;
    // Reference tables (e.g. `district_population`) are scanned too, but they
    // are not streams: no watermark waits on them and no topic is subscribed.
    let feeds: BTreeSet<String> = scanned_tables(&logical)
        .into_iter()
        .filter(|t| catalog.feeds.contains_key(t))
        .collect();
    let physical = state
        .create_physical_plan(&logical)
        .await
        .map_err(plan_err)?;
    let mut stages = Vec::new();
    let final_plan = split(physical, &mut stages, catalog).map_err(plan_err)?;
    if stages.is_empty() {
        return Err(vec![at_start(
            "the window must group an aggregate over the feeds (e.g. count(*) … GROUP BY grid_id, tumble(INTERVAL '1 hour'))",
        )]);
    }
    let mut leaves = 0;
    final_plan
        .apply(|node| {
            if let Some(scan) = node.downcast_ref::<StreamingTableExec>()
                && !is_reference(scan, catalog)
            {
                leaves += 1;
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(plan_err)?;
    if leaves != stages.len() {
        return Err(vec![at_start(
            "every feed the query reads must be aggregated in a windowed GROUP BY",
        )]);
    }
    let output_schema = final_plan.schema();
    if matches!(window, WindowSpec::Session { .. }) {
        // A session's bounds differ per key, so every row must say which session it is.
        if stages.len() != 1 {
            return Err(vec![at_start(
                "a session-window pipeline has one windowed aggregate",
            )]);
        }
        if output_schema.index_of(WINDOW_START).is_err()
            || output_schema.index_of(WINDOW_END).is_err()
        {
            return Err(vec![at_start(
                "a session-window query must select window_start and window_end: each key's sessions have their own bounds",
            )]);
        }
    }
    let mut compiled = CompiledQuery {
        window,
        feeds,
        stages,
        final_plan,
        output_schema,
        ordered,
        columns: HashMap::new(),
        state,
    };
    learn_inputs(&mut compiled, catalog).map_err(plan_err)?;
    Ok(compiled)
}

/// Which feeds each stage reads (learnt by starting it once), and which of
/// their columns.
fn learn_inputs(compiled: &mut CompiledQuery, catalog: &Catalog) -> Result<(), DataFusionError> {
    for i in 0..compiled.stages.len() {
        let running = compiled.start_stage(i, Millis::MAX)?;
        compiled.stages[i].feeds = running.senders.keys().cloned().collect();
    }
    compiled.columns = read_columns(&compiled.stages, catalog)?;
    Ok(())
}

impl CompiledQuery {
    /// The GROUP BY keys (besides the window) of a windowed aggregate that
    /// does not group by `column`: empty when every one does, so that all events
    /// of a key come from the partition its `column` value is on when producers
    /// key the feed topics by it.
    pub fn keys_without(&self, column: &str) -> Vec<String> {
        self.stages
            .iter()
            .find(|s| !s.keys.iter().any(|k| k == column))
            .map_or_else(Vec::new, |s| s.keys.clone())
    }

    /// Starts stage `i` for a new window bin: its feed scans wait on channels.
    pub fn start_stage(&self, i: usize, as_of: Millis) -> Result<RunningStage, DataFusionError> {
        let stage = &self.stages[i];
        let inputs = Arc::new(BinInputs::starting(as_of));
        let config = self.state.config().clone().with_extension(inputs.clone());
        let ctx = Arc::new(TaskContext::from(&self.state).with_session_config(config));
        // Plans keep execution state (metrics, filters); each bin gets a fresh copy.
        let plan = reset_plan_states(stage.plan.clone())?;
        let n = plan.output_partitioning().partition_count();
        let streams = (0..n)
            .map(|p| plan.execute(p, ctx.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RunningStage {
            senders: inputs.take_senders(),
            streams,
        })
    }

    /// Runs the final plan over the partial states of one window, by stage.
    /// Reference tables read the version in force at `as_of`, the window's start.
    pub async fn finish_window(
        &self,
        states: HashMap<usize, Vec<RecordBatch>>,
        as_of: Millis,
    ) -> Result<Vec<RecordBatch>, DataFusionError> {
        let inputs = Arc::new(FinalInputs {
            states: std::sync::Mutex::new(states),
            as_of,
        });
        let config = self.state.config().clone().with_extension(inputs);
        let ctx = Arc::new(TaskContext::from(&self.state).with_session_config(config));
        let plan = reset_plan_states(self.final_plan.clone())?;
        datafusion::physical_plan::collect(plan, ctx).await
    }
}

fn at_start(message: &str) -> SqlError {
    SqlError {
        line: 1,
        col: 1,
        message: message.to_string(),
    }
}

fn scanned_tables(plan: &LogicalPlan) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            names.insert(scan.table_name.table().to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    names
}

/// The feed columns the partial stages' scans project (the optimizer pushes
/// every column the query uses into the scan's projection), so the decoder
/// need not build the others.
fn read_columns(
    stages: &[PartialStage],
    catalog: &Catalog,
) -> Result<HashMap<String, Option<BTreeSet<usize>>>, DataFusionError> {
    let mut columns: HashMap<String, Option<BTreeSet<usize>>> = HashMap::new();
    for stage in stages {
        stage.plan.apply(|node| {
            let Some(scan) = node.downcast_ref::<StreamingTableExec>() else {
                return Ok(TreeNodeRecursion::Continue);
            };
            // A scan names no table; its schema tells the feed. Feeds of the
            // same schema in one stage cannot be told apart: they read all.
            let feeds: Vec<&String> = stage
                .feeds
                .iter()
                .filter(|f| {
                    catalog.get(f).is_some_and(|s| {
                        tables::feed_table_schema(s).fields() == scan.partition_schema().fields()
                    })
                })
                .collect();
            for feed in &feeds {
                let read = columns
                    .entry(feed.to_string())
                    .or_insert_with(|| Some(BTreeSet::new()));
                match (read.as_mut(), scan.projection()) {
                    (Some(set), Some(projection)) if feeds.len() == 1 => {
                        set.extend(projection.iter().copied())
                    }
                    _ => *read = None,
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
    }
    // A feed the query reads whose scan was not found: all of it.
    for feed in stages.iter().flat_map(|s| s.feeds.iter()) {
        columns.entry(feed.clone()).or_insert(None);
    }
    Ok(columns)
}

/// Replaces the partial half of every windowed aggregate by a state table and
/// collects the partial halves as stages.
fn split(
    node: Arc<dyn ExecutionPlan>,
    stages: &mut Vec<PartialStage>,
    catalog: &Catalog,
) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
    if let Some(agg) = node.downcast_ref::<AggregateExec>()
        && matches!(
            agg.mode(),
            AggregateMode::Final | AggregateMode::FinalPartitioned
        )
        && let Some(partial) = find_partial(agg.input())
    {
        let partial_agg = partial.downcast_ref::<AggregateExec>();
        let group_columns = partial_agg.map_or(0, |p| p.group_expr().expr().len());
        let aggregates = partial_agg.map_or_else(Vec::new, |p| p.aggr_expr().to_vec());
        let state_schema = partial.schema();
        let index = |name: &str| state_schema.index_of(name).ok();
        let (Some(s), Some(e)) = (index(WINDOW_START), index(WINDOW_END)) else {
            return Err(DataFusionError::Plan(
                "a windowed aggregate must group by its window".into(),
            ));
        };
        let partial = lookup::reference_builds(partial, catalog)?;
        let id = stages.len();
        let source = StreamingTableExec::try_new(
            state_schema.clone(),
            vec![Arc::new(StatePartition {
                stage: id,
                schema: state_schema.clone(),
            })],
            None,
            Vec::new(),
            false,
            None,
        )?;
        let keys = (0..group_columns)
            .filter(|c| *c != s && *c != e)
            .map(|c| state_schema.field(c).name().clone())
            .collect();
        stages.push(PartialStage {
            plan: partial,
            feeds: BTreeSet::new(),
            state_schema,
            window_columns: [s, e],
            group_columns,
            keys,
            aggregates,
        });
        return node.replace_children(vec![Arc::new(source)], recompute());
    }
    let children: Vec<Arc<dyn ExecutionPlan>> = node.children().into_iter().cloned().collect();
    if children.is_empty() {
        return Ok(node);
    }
    let new_children = children
        .into_iter()
        .map(|c| split(c, stages, catalog))
        .collect::<Result<Vec<_>, _>>()?;
    node.replace_children(new_children, recompute())
}

/// Whether a scan reads a reference table rather than a feed or a state.
pub(crate) fn is_reference(scan: &StreamingTableExec, catalog: &Catalog) -> bool {
    let fields = scan.partition_schema().fields();
    catalog.tables.values().any(|t| t.schema.fields() == fields)
}

fn recompute() -> ReplaceChildrenOptions {
    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute)
}

/// The partial aggregate under a final one, when it reads feeds directly (no other
/// aggregate below it).
fn find_partial(input: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let mut node = input.clone();
    loop {
        if let Some(agg) = node.downcast_ref::<AggregateExec>() {
            if *agg.mode() != AggregateMode::Partial {
                return None;
            }
            let mut nested = false;
            agg.input()
                .apply(|n| {
                    nested |= n.is::<AggregateExec>();
                    Ok(TreeNodeRecursion::Continue)
                })
                .ok()?;
            return (!nested).then_some(node);
        }
        // Only partition plumbing may sit between the two halves.
        let name = node.name();
        if !(name == "CoalescePartitionsExec" || name == "RepartitionExec") {
            return None;
        }
        node = node.children().first().map(|c| (*c).clone())?;
    }
}

/// Finds where in the SQL an error happened: DataFusion's span when it gives one,
/// a `Line: n, Column: m` in parser errors, or the first mention of a name the
/// message quotes.
pub(crate) fn locate(e: &DataFusionError, sql: &str) -> SqlError {
    let message = e.strip_backtrace().trim().replace('\n', " ");
    let message = message
        .strip_prefix("Error during planning: ")
        .or_else(|| message.strip_prefix("Schema error: "))
        .unwrap_or(&message)
        .to_string();
    if let Some(d) = e.diagnostic()
        && let Some(span) = d.span
        && span.start.line > 0
    {
        return SqlError {
            line: span.start.line as usize,
            col: span.start.column as usize,
            message,
        };
    }
    if let Some(i) = message.find("Line: ") {
        let nums: Vec<usize> = message[i..]
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .take(2)
            .filter_map(|s| s.parse().ok())
            .collect();
        if let [line, col] = nums[..] {
            return SqlError { line, col, message };
        }
    }
    for name in quoted_names(&message) {
        if let Some(offset) = find_word(sql, &name) {
            let (line, col) = crate::error::line_col(sql, offset);
            return SqlError { line, col, message };
        }
    }
    SqlError {
        line: 1,
        col: 1,
        message,
    }
}

/// Names a DataFusion message mentions: `'x'`, `"x"`, or after "named ".
fn quoted_names(message: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(i) = message.find("named ") {
        let rest = &message[i + 6..];
        let word: String = rest
            .trim_start_matches(['\'', '"'])
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        let word = word.trim_end_matches('.');
        out.push(word.rsplit('.').next().unwrap_or(word).to_string());
    }
    for q in ['\'', '"'] {
        let mut parts = message.split(q);
        parts.next();
        while let (Some(inside), _) = (parts.next(), parts.next()) {
            let last = inside.rsplit('.').next().unwrap_or(inside);
            if !last.is_empty() && last.len() < 64 {
                out.push(last.to_string());
            }
        }
    }
    out
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    let lower = text.to_lowercase();
    let w = word.to_lowercase();
    let mut start = 0;
    while let Some(i) = lower[start..].find(&w) {
        let at = start + i;
        let before = lower[..at].chars().next_back();
        let after = lower[at + w.len()..].chars().next();
        let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        if !is_word(before) && !is_word(after) {
            return Some(at);
        }
        start = at + w.len();
    }
    None
}
