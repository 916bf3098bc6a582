//! Lookup joins: a feed joined with a reference table below the windowed
//! aggregate (`FROM labor_dispute d JOIN key_enterprises k USING (enterprise_id)`),
//! so each event is enriched as it arrives. The join must build its hash table
//! from the reference table and stream the feed through it — the other way round
//! it would hold every event of a bin until the bin closes — so a join that would
//! build from the feed has its inputs swapped. Feeds are still never joined with
//! each other event by event.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, NestedLoopJoinExec, PartitionMode};
use datafusion::physical_plan::streaming::StreamingTableExec;

use super::is_reference;
use crate::schema::Catalog;

/// The partial half with every lookup join building from its reference side.
pub(super) fn reference_builds(
    partial: Arc<dyn ExecutionPlan>,
    catalog: &Catalog,
) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
    let mut joins = 0;
    partial.apply(|n| {
        joins += usize::from(n.name().contains("Join"));
        Ok(TreeNodeRecursion::Continue)
    })?;
    if joins == 0 {
        return Ok(partial);
    }
    if feed_scans(&partial, catalog)? > 1 {
        return Err(DataFusionError::Plan(
            "feeds cannot be joined event by event; aggregate each feed in the window, then join the aggregates on window_start and the keys (a reference table may be joined with a feed)".into(),
        ));
    }
    partial
        .transform_up(|node| {
            if let Some(join) = node.downcast_ref::<HashJoinExec>() {
                if feed_scans(join.left(), catalog)? > 0 {
                    return Ok(Transformed::yes(
                        join.swap_inputs(PartitionMode::CollectLeft)?,
                    ));
                }
            } else if let Some(join) = node.downcast_ref::<NestedLoopJoinExec>() {
                if feed_scans(join.left(), catalog)? > 0 {
                    return Ok(Transformed::yes(join.swap_inputs()?));
                }
            } else if node.name().contains("Join") {
                return Err(DataFusionError::Plan(format!(
                    "a feed joins a reference table on equal columns (e.g. USING (enterprise_id)); this join plans as {}",
                    node.name()
                )));
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
}

/// Scans of feeds (not reference tables) under `plan`.
fn feed_scans(plan: &Arc<dyn ExecutionPlan>, catalog: &Catalog) -> Result<usize, DataFusionError> {
    let mut n = 0;
    plan.apply(|node| {
        if let Some(scan) = node.downcast_ref::<StreamingTableExec>()
            && !is_reference(scan, catalog)
        {
            n += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whichever side the SQL names first, and for a left join too, the hash
    /// table is built from the reference table and the feed streams through it;
    /// two feeds are refused.
    #[test]
    fn the_reference_table_is_the_build_side() {
        let catalog = Catalog::embedded().expect("catalog");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        for from in [
            "labor_dispute d JOIN key_enterprises k ON d.enterprise_id = k.enterprise_id",
            "key_enterprises k JOIN labor_dispute d ON d.enterprise_id = k.enterprise_id",
            "labor_dispute d LEFT JOIN key_enterprises k ON d.enterprise_id = k.enterprise_id",
        ] {
            let sql = format!(
                "SELECT k.owner_department, count(*) AS n FROM {from} GROUP BY k.owner_department, tumble(INTERVAL '1 day')"
            );
            let q = rt
                .block_on(super::super::compile(&sql, &catalog))
                .unwrap_or_else(|e| panic!("{from}: {e:?}"));
            let mut builds = Vec::new();
            q.stages[0]
                .plan
                .apply(|n| {
                    if let Some(j) = n.downcast_ref::<HashJoinExec>() {
                        builds.push(feed_scans(j.left(), &catalog)?);
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
                .expect("walk");
            assert_eq!(builds, [0], "{from}: the build side holds no feed");
        }
        let two_feeds = "SELECT count(*) AS n FROM labor_dispute d JOIN petition p ON d.district = p.district GROUP BY tumble(INTERVAL '1 day')";
        // (Both feeds carry the window columns, so the plan fails even before the split.)
        assert!(
            rt.block_on(super::super::compile(two_feeds, &catalog))
                .is_err(),
            "two feeds joined event by event"
        );
    }
}
