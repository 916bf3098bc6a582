//! State per partition (`[state] per_partition`): several instances share one
//! consumer group, and each partition's state moves with it, as in Kafka
//! Streams. A *task* is partition *p* of every feed topic the pipelines keyed
//! by district read; one more task, pinned, runs the pipelines keyed otherwise
//! (by topic, by industry) over every partition of their feeds. Each task is a
//! [slot](super::slot) of its own — engine, state dir `dir/NAME`, state-topic
//! key `GROUP.NAME`, offsets — on a thread of its own.
//!
//! Who runs which task is decided by the consumer group itself, on a topic with
//! one partition per task (`STATE_TOPIC.tasks`): owning partition *t* of it is
//! owning task *t*. When the group takes a task away, the rebalance waits until
//! the task has written its last checkpoint and stopped (without closing its
//! windows), so its next owner restores exactly where it stopped. A task whose
//! owner died restarts from its last checkpoint; what it emitted after that is
//! emitted again with the same ids and kept off the output topics by the
//! read-back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};

use super::checkpoint::StateDir;
use super::slot::{self, Assigned, Shared, Slot};
use super::{KEEP_ALIVE, consumer_config, until_it_works, wait_for_predecessor};
use crate::config::KafkaConfig;
use crate::error::{Error, Result};
use crate::pipeline::Compiled;
use crate::task::command::Update;

/// The tasks group's session timeout, unless `[kafka.settings]` says otherwise.
pub const TASKS_SESSION_MS: &str = "20000";

/// How long a task that failed waits before it is started again.
const RETRY: Duration = Duration::from_secs(5);

/// The pipelines of the tasks: those keyed by district, run per partition,
/// and the others, pinned to one task.
#[derive(Clone)]
pub struct Plan {
    pub by_district: Compiled,
    pub pinned: Option<Compiled>,
}

impl Plan {
    /// Splits the pipelines by whether every windowed aggregate groups by
    /// `district`; a compound goes with its inputs.
    pub fn of(compiled: &Compiled) -> Plan {
        let keyed = |p: &crate::pipeline::Pipeline| p.query.keys_without("district").is_empty();
        let (by, other): (Vec<_>, Vec<_>) = compiled.pipelines.iter().cloned().partition(keyed);
        let by_names: Vec<&str> = by.iter().map(|p| p.def.name.as_str()).collect();
        let (cby, cother): (Vec<_>, Vec<_>) = compiled.compounds.iter().cloned().partition(|c| {
            c.def
                .compound
                .inputs
                .iter()
                .all(|i| by_names.contains(&i.get_ref().as_str()))
        });
        let with = |pipelines, compounds| Compiled {
            pipelines,
            compounds,
            routing: compiled.routing.clone(),
        };
        Plan {
            by_district: with(by, cby),
            pinned: (!other.is_empty() || !cother.is_empty()).then(|| with(other, cother)),
        }
    }
}

/// A task running on its thread.
struct Running {
    stop: Arc<AtomicBool>,
    updates: Sender<Update>,
    thread: JoinHandle<Result<()>>,
}

/// Tells the tasks to stop, all at once, and waits for their last checkpoints.
fn stop_all(tasks: Vec<(i32, Running)>) {
    for (_, r) in &tasks {
        r.stop.store(true, Ordering::Relaxed);
    }
    for (task, r) in tasks {
        r.join(task);
    }
}

impl Running {
    /// Waits for the task's end (its last checkpoint, once told to stop).
    fn join(self, task: i32) {
        match self.thread.join() {
            Ok(Ok(())) => tracing::info!(task, "task stopped"),
            Ok(Err(e)) => tracing::error!(task, error = %e, "task stopped"),
            Err(_) => tracing::error!(task, "task panicked"),
        }
    }
}

type RunningTasks = Arc<Mutex<BTreeMap<i32, Running>>>;

/// The tasks-topic consumer's context: a task taken away stops (its last
/// checkpoint written) before the rebalance goes on.
struct Handoff {
    running: RunningTasks,
}

impl ClientContext for Handoff {}

impl ConsumerContext for Handoff {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let revoked: Vec<(i32, Running)> = match self.running.lock() {
            Ok(mut running) => tpl
                .elements()
                .iter()
                .filter_map(|e| Some((e.partition(), running.remove(&e.partition())?)))
                .collect(),
            Err(_) => return,
        };
        let tasks: Vec<i32> = revoked.iter().map(|(t, _)| *t).collect();
        tracing::info!(?tasks, "tasks revoked: writing their state");
        stop_all(revoked);
    }
}

/// Runs the tasks this instance is given until SIGTERM or SIGINT.
pub fn run(
    shared: Shared,
    k: KafkaConfig,
    compiled: Compiled,
    updates: Receiver<Update>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let Some(state_topic) = shared.config.state.topic.clone() else {
        return Err(Error::Other(
            "[state] per_partition needs [state] topic: a task's state moves through it".into(),
        ));
    };
    let mut root = StateDir::open(&shared.config.state.dir)?;
    root.keep_alive(KEEP_ALIVE);
    let plan = Plan::of(&compiled);
    let Some(Topics {
        partitions,
        counts,
        tasks_topic,
    }) = prepare(&k, &plan, &state_topic, &stop)?
    else {
        return Ok(());
    };
    let total = partitions + i32::from(plan.pinned.is_some());
    let config = tasks_consumer_config(&k);
    if !wait_for_predecessor(&root, &config, &stop) {
        return Ok(());
    }
    let running: RunningTasks = Default::default();
    let consumer: BaseConsumer<Handoff> = config
        .clone()
        .set("partition.assignment.strategy", "roundrobin")
        .create_with_context(Handoff {
            running: running.clone(),
        })
        .map_err(Error::doing("tasks consumer"))?;
    consumer
        .subscribe(&[&tasks_topic])
        .map_err(Error::doing("subscribing"))?;
    tracing::info!(tasks = total, topic = %tasks_topic, "sharing tasks in the group");
    let starter = Starter {
        shared: Arc::new(shared),
        k,
        plan,
        partitions,
        counts: Arc::new(counts),
    };
    let mut failed: BTreeMap<i32, Instant> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
            tracing::warn!(error = %e, "tasks consumer");
        }
        let owned: Vec<i32> = consumer
            .assignment()
            .map(|a| a.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default();
        reconcile(&starter, &running, &owned, &mut failed);
        while let Ok(u) = updates.try_recv() {
            if let Ok(running) = running.lock() {
                for r in running.values() {
                    let _ = r.updates.send(u.clone());
                }
            }
        }
    }
    let all: Vec<(i32, Running)> = match running.lock() {
        Ok(mut running) => std::mem::take(&mut *running).into_iter().collect(),
        Err(_) => Vec::new(),
    };
    stop_all(all);
    // Leave the group before saying so: a successor may then join at once.
    drop(consumer);
    root.stopped();
    Ok(())
}

/// The district-keyed feed topics' partition count, every topic's, and the
/// tasks topic (created); `None` if told to stop while the broker was away.
fn prepare(
    k: &KafkaConfig,
    plan: &Plan,
    state_topic: &str,
    stop: &AtomicBool,
) -> Result<Option<Topics>> {
    let Some(counts) = until_it_works("reading the topics' partitions", stop, || {
        partition_counts(k, plan)
    }) else {
        return Ok(None);
    };
    let partitions = co_partitions(k, plan, &counts)?;
    let tasks_topic = format!("{state_topic}.tasks");
    let total = partitions + i32::from(plan.pinned.is_some());
    let created = until_it_works("creating the tasks topic", stop, || {
        create_tasks_topic(k, &tasks_topic, total)
    });
    Ok(created.map(|()| Topics {
        partitions,
        counts,
        tasks_topic,
    }))
}

/// The topics' partitions, as the tasks need them.
struct Topics {
    /// Of the district-keyed feed topics: tasks `0..partitions`.
    partitions: i32,
    counts: BTreeMap<String, i32>,
    /// One partition per task.
    tasks_topic: String,
}

/// The tasks group's consumer. Handing tasks over (last checkpoints written)
/// can take seconds on a busy broker; a member still doing so must not count
/// as gone, or the group rebalances again and again.
fn tasks_consumer_config(k: &KafkaConfig) -> rdkafka::config::ClientConfig {
    let mut config = consumer_config(k);
    if !k.settings.contains_key("session.timeout.ms") {
        config.set("session.timeout.ms", TASKS_SESSION_MS);
    }
    config
}

/// What starting a task needs.
struct Starter {
    shared: Arc<Shared>,
    k: KafkaConfig,
    plan: Plan,
    /// Partitions of the feed topics keyed by district: tasks `0..partitions`.
    partitions: i32,
    counts: Arc<BTreeMap<String, i32>>,
}

impl Starter {
    fn start(&self, task: i32) -> Result<Running> {
        let (name, partition, compiled) = match &self.plan.pinned {
            _ if (0..self.partitions).contains(&task) => (
                format!("p{task}"),
                Some(task),
                self.plan.by_district.clone(),
            ),
            Some(pinned) if task == self.partitions => ("pinned".into(), None, pinned.clone()),
            _ => {
                return Err(Error::Other(format!(
                    "no task {task}: the tasks topic has more partitions than there are tasks"
                )));
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (updates, received) = std::sync::mpsc::channel();
        let mut k = self.k.clone();
        k.group_id = format!("{}.{name}", self.k.group_id);
        let slot = Slot {
            k,
            dir: self.shared.config.state.dir.join(&name),
            assigned: Some(Assigned {
                partition,
                counts: self.counts.clone(),
            }),
            stop: stop.clone(),
            updates: received,
        };
        let shared = self.shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("task-{name}"))
            .spawn(move || slot::run(&shared, slot, slot::engine(&shared, compiled)?, None))
            .map_err(|e| Error::Other(format!("starting task {name}: {e}")))?;
        tracing::info!(task, %name, "task started");
        Ok(Running {
            stop,
            updates,
            thread,
        })
    }
}

/// Starts the tasks owned and not running; a task that ended by itself (an
/// error) is said and started again after [`RETRY`].
fn reconcile(
    starter: &Starter,
    running: &RunningTasks,
    owned: &[i32],
    failed: &mut BTreeMap<i32, Instant>,
) {
    let Ok(mut tasks) = running.lock() else {
        return;
    };
    let ended: Vec<i32> = tasks
        .iter()
        .filter(|(_, r)| r.thread.is_finished())
        .map(|(t, _)| *t)
        .collect();
    for task in ended {
        if let Some(r) = tasks.remove(&task) {
            r.join(task);
            failed.insert(task, Instant::now());
            starter.shared.metrics.partition_task_failures.inc();
        }
    }
    for &task in owned {
        let waiting = failed.get(&task).is_some_and(|at| at.elapsed() < RETRY);
        if tasks.contains_key(&task) || waiting {
            continue;
        }
        match starter.start(task) {
            Ok(r) => {
                tasks.insert(task, r);
            }
            Err(e) => {
                tracing::error!(task, error = %e, "starting a task");
                starter.shared.metrics.partition_task_failures.inc();
                failed.insert(task, Instant::now());
            }
        }
    }
    starter
        .shared
        .metrics
        .partition_tasks
        .set(tasks.len() as i64);
}

/// The number of partitions of each feed topic the plan reads and of the
/// task-updates topic; `Err` until the broker says (and every topic exists).
fn partition_counts(k: &KafkaConfig, plan: &Plan) -> Result<BTreeMap<String, i32>> {
    let consumer: BaseConsumer = k.client().create().map_err(Error::doing("metadata"))?;
    let mut topics = feed_topics(k, &plan.by_district);
    if let Some(p) = &plan.pinned {
        topics.extend(feed_topics(k, p));
    }
    topics.push(k.topics.task_updates.clone());
    let mut counts = BTreeMap::new();
    for topic in topics {
        let m = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .map_err(Error::doing("metadata"))?;
        let n = m
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map_or(0, |t| t.partitions().len() as i32);
        if n == 0 {
            return Err(Error::Other(format!(
                "the topic {topic} has no partitions yet"
            )));
        }
        counts.insert(topic, n);
    }
    Ok(counts)
}

/// The topics of the feeds `compiled` reads.
fn feed_topics(k: &KafkaConfig, compiled: &Compiled) -> Vec<String> {
    let mut topics: Vec<String> = compiled
        .pipelines
        .iter()
        .flat_map(|p| p.query.feeds.iter().cloned())
        .map(|f| k.topics.of_feed(&f))
        .collect();
    topics.sort();
    topics.dedup();
    topics
}

/// The partition count the feed topics keyed by district share: partition *p*
/// of each must hold the same districts, so they must have as many.
fn co_partitions(k: &KafkaConfig, plan: &Plan, counts: &BTreeMap<String, i32>) -> Result<i32> {
    let per_topic: Vec<(String, i32)> = feed_topics(k, &plan.by_district)
        .into_iter()
        .map(|t| {
            let n = counts.get(&t).copied().unwrap_or(0);
            (t, n)
        })
        .collect();
    let n = per_topic.first().map_or(1, |(_, n)| *n);
    if per_topic.iter().any(|(_, m)| *m != n) {
        return Err(Error::Other(format!(
            "per_partition: the feed topics read together must have as many partitions each: {per_topic:?}"
        )));
    }
    Ok(n)
}

/// Creates the topic whose partitions stand for the tasks (it holds no records).
fn create_tasks_topic(k: &KafkaConfig, topic: &str, partitions: i32) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> =
        k.client().create().map_err(Error::doing("admin"))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    let created = futures::executor::block_on(admin.create_topics(
        &[new],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))
    .map_err(Error::doing("creating the tasks topic"))?;
    match created.into_iter().next() {
        Some(Ok(_)) => Ok(()),
        Some(Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))) => {
            // Made for another partition count: some tasks would never run.
            let consumer: BaseConsumer = k.client().create().map_err(Error::doing("metadata"))?;
            let m = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .map_err(Error::doing("metadata"))?;
            let has = m
                .topics()
                .first()
                .map_or(0, |t| t.partitions().len() as i32);
            if has != partitions {
                tracing::error!(
                    topic,
                    has,
                    needs = partitions,
                    "the tasks topic has the wrong number of partitions: delete it, or give it as many as there are tasks"
                );
                return Err(Error::Other(format!(
                    "the tasks topic {topic} has {has} partitions, not {partitions}"
                )));
            }
            Ok(())
        }
        other => Err(Error::Other(format!("creating {topic}: {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::Plan;
    use crate::pipeline::compile_embedded;
    use crate::schema::Catalog;

    fn names(c: &crate::pipeline::Compiled) -> Vec<String> {
        let mut n: Vec<String> = c.pipelines.iter().map(|p| p.def.name.clone()).collect();
        n.extend(c.compounds.iter().map(|c| c.def.name.clone()));
        n.sort();
        n
    }

    #[test]
    fn the_shipped_pipelines_keyed_otherwise_than_by_district_are_pinned_and_the_compound_goes_with_its_inputs()
     {
        let catalog = Catalog::embedded().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let compiled = rt.block_on(compile_embedded(&catalog)).unwrap();
        let plan = Plan::of(&compiled);
        let pinned = plan
            .pinned
            .as_ref()
            .expect("two pipelines are not keyed by district");
        assert_eq!(
            names(pinned),
            ["labor_industry_week", "opinion_negative_topic"]
        );
        let by_district = names(&plan.by_district);
        assert!(by_district.contains(&"district_compound_risk".to_string()));
        assert!(by_district.contains(&"negative_list_homicide_rate".to_string()));
        // Every pipeline runs in exactly one kind of task.
        assert_eq!(
            by_district.len() + names(pinned).len(),
            compiled.pipelines.len() + compiled.compounds.len()
        );
    }
}
