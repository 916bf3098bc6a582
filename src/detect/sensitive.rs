//! Sensitive dates (敏感节点): national meetings, holidays, anniversaries, on
//! which a district watches closer. A pipeline's `[sensitive]` section names a
//! reference table of periods (`start`, `end` timestamps) and how much closer
//! to watch in a window that overlaps one: its levels raised by `raise` steps,
//! and its `[detect]` alpha multiplied by `alpha_factor` (more than 1: more
//! windows count as unusual).
//!
//! ```toml
//! [sensitive]
//! calendar = "sensitive_dates"
//! raise = 1
//! alpha_factor = 10
//! ```

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMillisecondType;

use super::config::{DetectConfig, SensitiveConfig};
use crate::alert::Measure;
use crate::core::level::Level;
use crate::core::time::Millis;
use crate::reference::{ReferenceTable, Tables};

/// A checked `[sensitive]`, with its calendar.
#[derive(Debug, Clone)]
pub struct Sensitive {
    pub name: String,
    calendar: Arc<ReferenceTable>,
    pub raise: u8,
    pub alpha_factor: f64,
}

impl Sensitive {
    /// Checks the section against the reference tables; the message says what is wrong.
    pub fn new(c: &SensitiveConfig, tables: &Tables) -> Result<Sensitive, String> {
        let name = c.calendar.get_ref();
        let Some(table) = tables.get(name) else {
            return Err(format!(
                "[sensitive] calendar `{name}`: no such reference table (tables: {})",
                crate::reference::names(tables)
            ));
        };
        for column in ["start", "end"] {
            let ok = table
                .schema
                .field_with_name(column)
                .is_ok_and(|f| f.data_type() == &crate::core::field::timestamp_type());
            if !ok {
                return Err(format!(
                    "[sensitive] calendar `{name}` needs a `{column}` column of type timestamp"
                ));
            }
        }
        if !(c.alpha_factor > 0.0 && c.alpha_factor.is_finite()) {
            return Err("[sensitive] alpha_factor must be a positive number".into());
        }
        Ok(Sensitive {
            name: name.clone(),
            calendar: table.clone(),
            raise: c.raise.min(3),
            alpha_factor: c.alpha_factor,
        })
    }

    /// The `[detect]` settings for a sensitive window: alpha multiplied by the
    /// factor, at most 0.5 (the levels above it follow from `raise`).
    pub fn closer(&self, mut c: DetectConfig) -> DetectConfig {
        c.alpha = (c.alpha * self.alpha_factor).min(0.5);
        c
    }

    /// Raises each graded level, and says why in the method.
    pub fn raise_levels(&self, judged: &mut [(String, Measure, Option<Level>)]) {
        for (_, measure, level) in judged.iter_mut() {
            if let Some(l) = level.as_mut() {
                *l = l.raised(self.raise);
                measure.method = format!(
                    "{}; sensitive date ({}) +{}",
                    measure.method, self.name, self.raise
                );
            }
        }
    }

    /// Whether the window `[start, end)` overlaps a period of the calendar in
    /// force at its start.
    pub fn covers(&self, start: Millis, end: Millis) -> bool {
        let contents = self.calendar.at(start);
        let b = &contents.batch;
        let (Some(s), Some(e)) = (b.column_by_name("start"), b.column_by_name("end")) else {
            return false;
        };
        let (s, e) = (
            s.as_primitive::<TimestampMillisecondType>(),
            e.as_primitive::<TimestampMillisecondType>(),
        );
        (0..b.num_rows())
            .any(|i| !s.is_null(i) && !e.is_null(i) && s.value(i) < end && start < e.value(i))
    }
}
