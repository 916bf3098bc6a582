//! Fixed rules: a SQL condition on a window's result row (`persons >= 5`,
//! `deaths >= 3`) planned by DataFusion against the pipeline's output columns.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::error::DataFusionError;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

use crate::core::level::Level;

/// A rule ready to run on window rows.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub name: String,
    pub level: Level,
    pub expr: Arc<dyn PhysicalExpr>,
}

/// Plans `when` against the output schema; it must be a boolean condition.
pub fn compile_condition(
    when: &str,
    schema: &SchemaRef,
) -> Result<Arc<dyn PhysicalExpr>, DataFusionError> {
    let ctx = SessionContext::new();
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    let expr = ctx.parse_sql_expr(when, &df_schema)?;
    let physical = ctx.create_physical_expr(expr, &df_schema)?;
    let ty = physical.data_type(schema)?;
    if ty != DataType::Boolean {
        return Err(DataFusionError::Plan(format!(
            "a rule's `when` must be a condition (true or false), not {ty}"
        )));
    }
    Ok(physical)
}

impl CompiledRule {
    /// Which rows of a window's result meet the rule (null counts as no).
    pub fn matches(&self, batch: &RecordBatch) -> Result<Vec<bool>, DataFusionError> {
        let value = self.expr.evaluate(batch)?.into_array(batch.num_rows())?;
        let b = value.as_boolean();
        Ok((0..b.len()).map(|i| b.is_valid(i) && b.value(i)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn conditions_run_on_rows_and_must_be_boolean() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "persons",
            DataType::Int64,
            true,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![Some(2), Some(7), None]))],
        )
        .unwrap();
        let rule = CompiledRule {
            name: "collective".into(),
            level: Level::Yellow,
            expr: compile_condition("persons >= 5", &schema).unwrap(),
        };
        assert_eq!(rule.matches(&batch).unwrap(), vec![false, true, false]);
        assert!(compile_condition("persons + 1", &schema).is_err());
        assert!(compile_condition("nobody > 1", &schema).is_err());
    }
}
