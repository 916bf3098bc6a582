//! A live redeploy: the daemon swaps in a new set of pipelines without a
//! restart. A pipeline whose definition (SQL, windows, `[detect]`, rules) is
//! unchanged keeps everything — open windows, series, open incidents; a changed
//! one starts afresh and a removed one goes, and both first resolve the
//! incidents they had open, saying why. A pipeline started afresh may be warmed
//! from a run over history (`replay --save-state`): its series, not its incidents. Tasks stay, under the new routing table.

use std::collections::{BTreeMap, BTreeSet};

use super::{Engine, EngineState, RunningPipeline, decoders, running};
use crate::core::stage::Named;
use crate::core::stage::Stateful;
use crate::core::time::Millis;
use crate::detect::compound::CompoundDetector;
use crate::error::{Error, Result};
use crate::pipeline::Compiled;
use crate::sink::Sink;
use crate::task::TaskManager;

/// What a redeploy did, pipeline by pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redeployed {
    /// Unchanged: state kept.
    pub kept: Vec<String>,
    /// Changed: started afresh.
    pub restarted: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Restarted or added, and warmed from a saved state of the same definition.
    pub warmed: Vec<String>,
    /// Every pipeline now running, with the fingerprint of its definition.
    pub definitions: Vec<(String, String)>,
}

impl Engine {
    /// Every pipeline running, compounds last, with its definition's fingerprint.
    pub fn definitions(&self) -> Vec<(String, String)> {
        let pipelines = self
            .pipelines
            .iter()
            .map(|p| (p.name.to_string(), p.pipeline.def.fingerprint()));
        let compounds = self
            .compounds
            .iter()
            .map(|c| (c.name().to_string(), compound_fingerprint(c.file_text())));
        pipelines.chain(compounds).collect()
    }

    /// Runs `compiled` from now on (see the module doc). Refused, with the
    /// engine unchanged, when a new pipeline reads a feed the running ones do
    /// not: its input is not subscribed, so that takes a restart.
    pub fn redeploy(
        &mut self,
        compiled: Compiled,
        warm: Option<&EngineState>,
        sink: &mut dyn Sink,
    ) -> Result<Redeployed> {
        let reading = self.feeds_read();
        let new_feeds: BTreeSet<&String> = compiled
            .pipelines
            .iter()
            .flat_map(|p| p.query.feeds.iter())
            .filter(|f| !reading.contains(*f))
            .collect();
        if !new_feeds.is_empty() {
            return Err(Error::Other(format!(
                "the new set reads {new_feeds:?}, which no running pipeline reads: restart the daemon to add a feed"
            )));
        }
        let mut done = Redeployed::default();
        self.decoders = decoders(&self.catalog, &compiled.pipelines, &self.options);
        let task_levels = compiled.task_levels();
        let withdrawn = self.swap_pipelines(compiled.pipelines, warm, &mut done)?;
        self.swap_compounds(compiled.compounds, &mut done);
        if let Some(tasks) = self.tasks.as_mut() {
            tasks.reroute(compiled.routing, task_levels);
        } else {
            self.tasks = Some(TaskManager::new(compiled.routing, task_levels));
        }
        for (old, why) in withdrawn {
            self.withdraw(old, why, sink)?;
        }
        Ok(done)
    }

    /// The new pipelines in place of the old: unchanged ones kept, the others
    /// fresh. Returns the old ones that go, with why.
    fn swap_pipelines(
        &mut self,
        pipelines: Vec<crate::pipeline::Pipeline>,
        warm: Option<&EngineState>,
        done: &mut Redeployed,
    ) -> Result<Vec<(RunningPipeline, &'static str)>> {
        let mut old: BTreeMap<String, RunningPipeline> = self
            .pipelines
            .drain(..)
            .map(|p| (p.name.to_string(), p))
            .collect();
        let mut withdrawn = Vec::new();
        for p in pipelines {
            let name = p.def.name.clone();
            done.definitions.push((name.clone(), p.def.fingerprint()));
            match old.remove(&name) {
                Some(o) if o.pipeline.def.fingerprint() == p.def.fingerprint() => {
                    self.pipelines.push(o);
                    done.kept.push(name);
                    continue;
                }
                Some(o) => {
                    withdrawn.push((o, "its definition changed"));
                    done.restarted.push(name.clone());
                }
                None => done.added.push(name.clone()),
            }
            let fingerprint = p.def.fingerprint();
            let mut fresh = self.fresh(p)?;
            let saved = warm.and_then(|w| w.detector(&name, &fingerprint));
            if let (Some(d), Some(saved)) = (fresh.detector.as_mut(), saved) {
                d.restore(saved.warm());
                done.warmed.push(name);
            }
            self.pipelines.push(fresh);
        }
        for (name, o) in old {
            done.removed.push(name);
            withdrawn.push((o, "the pipeline was removed"));
        }
        Ok(withdrawn)
    }

    /// A pipeline started afresh, with the engine's inputs as they stand.
    fn fresh(&self, p: crate::pipeline::Pipeline) -> Result<RunningPipeline> {
        let mut fresh = running(p, &self.runtime, &self.table_schemas);
        for (feed, input) in &self.inputs {
            if fresh.operator.reads(feed) {
                fresh.operator.add_input(input);
            }
        }
        // Inputs ended or idle now (the feed-level input of a Kafka feed is
        // one from the start) must not hold the new pipeline back. Nothing
        // is open yet, so nothing closes.
        for input in &self.ended {
            fresh
                .operator
                .finish_input(input)
                .map_err(|e| Error::Other(e.to_string()))?;
        }
        Ok(fresh)
    }

    /// Compounds keep their state where their file is unchanged.
    fn swap_compounds(
        &mut self,
        defs: Vec<crate::detect::compound::CompoundDef>,
        done: &mut Redeployed,
    ) {
        let mut old: BTreeMap<String, CompoundDetector> = self
            .compounds
            .drain(..)
            .map(|c| (c.name().to_string(), c))
            .collect();
        for def in defs {
            let name = def.def.name.clone();
            done.definitions
                .push((name.clone(), compound_fingerprint(&def.file_text)));
            self.compounds.push(match old.remove(&name) {
                Some(c) if c.file_text() == def.file_text => c,
                _ => CompoundDetector::new(def),
            });
        }
    }

    /// Resolves the firing incidents of a pipeline that goes, at its watermark.
    fn withdraw(&mut self, mut old: RunningPipeline, why: &str, sink: &mut dyn Sink) -> Result<()> {
        let at = old.operator.watermark();
        let at = if at > Millis::MIN && at < Millis::MAX {
            at
        } else {
            self.max_time.unwrap_or(0)
        };
        let alerts = old
            .detector
            .as_mut()
            .map(|d| d.withdraw(at, why))
            .unwrap_or_default();
        for a in &alerts {
            tracing::info!(pipeline = %a.pipeline, incident = %a.incident_id, why, "incident withdrawn");
            self.stats.alerts += 1;
            sink.alert(a)?;
            if let Some(t) = self.tasks.as_mut() {
                t.alert(a);
            }
        }
        Ok(())
    }
}

fn compound_fingerprint(text: &str) -> String {
    crate::alert::stable_id(&[text])
}
