//! The daemon's watch on reference files: every few seconds each table's files
//! are looked at, and a table whose file changed is read again — the new rows
//! in force for the windows that start after. A file that no longer reads (a
//! half-written copy, a typo) leaves the version before in use, says so in the
//! log and in `yujing_reference_table_reloads_total{result="failed"}`, and is
//! tried again when it changes next. SIGHUP reads them too (with the pipelines).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::metrics::Metrics;
use crate::reference::{Reloaded, Tables};

/// How often files are looked at.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// What a file looked like: modified time and length.
type Seen = Option<(SystemTime, u64)>;

fn looked_at(path: &PathBuf) -> Seen {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Watches until `stop`; nothing to do without tables.
pub fn spawn(tables: Tables, metrics: Arc<Metrics>, stop: Arc<AtomicBool>) {
    metrics.reference_tables(&tables);
    let tables: crate::reference::Tables =
        tables.into_iter().filter(|(_, t)| !t.embedded).collect();
    if tables.is_empty() {
        return;
    }
    let files = |t: &crate::reference::ReferenceTable| -> Vec<PathBuf> {
        std::iter::once(t.def.file.clone())
            .chain(t.def.versions.iter().map(|v| v.file.clone()))
            .collect()
    };
    let mut seen: BTreeMap<String, Vec<Seen>> = tables
        .iter()
        .map(|(name, t)| (name.clone(), files(t).iter().map(looked_at).collect()))
        .collect();
    let spawned = std::thread::Builder::new()
        .name("reference-watch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(WATCH_EVERY);
                for (name, t) in &tables {
                    let now: Vec<Seen> = files(t).iter().map(looked_at).collect();
                    if seen.get(name) == Some(&now) {
                        continue;
                    }
                    seen.insert(name.clone(), now);
                    let result = match t.reload() {
                        Ok(Reloaded::Unchanged) => continue,
                        Ok(Reloaded::Changed(version)) => {
                            tracing::info!(table = %name, version, rows = t.rows(), "reference table read again");
                            "changed"
                        }
                        Err(diags) => {
                            let first = diags.first().map(ToString::to_string).unwrap_or_default();
                            tracing::warn!(table = %name, error = %first, "reference file does not read; the version before stays in use");
                            "failed"
                        }
                    };
                    metrics
                        .reference_reloads
                        .with_label_values(&[name.as_str(), result])
                        .inc();
                }
                // SIGHUP may have read them too.
                metrics.reference_tables(&tables);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no watch on reference files; SIGHUP still reads them");
    }
}
