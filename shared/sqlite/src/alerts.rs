//! Business alerts on the embedded engine ([`wabridge_core::alerts`]): each signal's warn line,
//! plus what `wabridge report health` reads: the latest state of each number, account and
//! recategorised template (`alert_state`), and per-minute counters of failed sends and SLA
//! breaches (`alert_counts`). Neither table names a customer (business numbers, template names,
//! account events, counts): erasure has nothing to reach. Both keep [`ALERT_RETENTION`]: rows
//! older than that are deleted at each write.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;
use wabridge_core::alerts::{emf, log, AlertSink, Signal};
use wabridge_core::error::StoreError;

use crate::db::{sql_err, Db};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alert_state (
    key    TEXT PRIMARY KEY,   -- signal:subject (number digits, WABA id, template name:language)
    signal TEXT NOT NULL,      -- the signal as JSON
    at     INTEGER NOT NULL    -- Unix ms of the fact
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_counts (
    minute INTEGER NOT NULL,   -- Unix minute
    metric TEXT NOT NULL,      -- an EMF metric name (SendsFailed, SlaBreaches, ...)
    n      INTEGER NOT NULL,
    PRIMARY KEY (minute, metric)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alert_state_at ON alert_state(at);
";

/// How long a state or a counter is kept (a health report looks back at most this far).
pub const ALERT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The signals that count (summed over the report's window) rather than hold a state.
const COUNTED: &[&str] = &[emf::SENDS_ATTEMPTED, emf::SENDS_FAILED, emf::SLA_BREACHES];

#[derive(Clone, Debug)]
pub struct SqliteAlerts {
    db: Db,
}

/// The state key of a signal that holds one (the latest per subject wins).
fn state_key(signal: &Signal) -> Option<String> {
    Some(match signal {
        Signal::NumberQuality { number, .. } => format!("number_quality:{number}"),
        Signal::TemplateCategory { name, language, .. } => {
            format!("template_category:{name}:{language}")
        }
        Signal::AccountRestriction { waba_id, .. } => format!("account_restriction:{waba_id}"),
        Signal::Backlog { .. } => "backlog".into(),
        _ => return None,
    })
}

impl SqliteAlerts {
    pub fn new(db: Db) -> SqliteAlerts {
        SqliteAlerts { db }
    }

    /// The latest state of each subject, oldest first, and the counters summed since `since_ms`.
    pub async fn read(
        &self,
        since_ms: i64,
    ) -> Result<(Vec<(Signal, i64)>, BTreeMap<String, u64>), StoreError> {
        self.db
            .read(move |c| {
                let mut states = Vec::new();
                let mut s = c
                    .prepare("SELECT signal, at FROM alert_state ORDER BY at, key")
                    .map_err(sql_err)?;
                let rows = s
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                    .map_err(sql_err)?;
                for row in rows {
                    let (json, at) = row.map_err(sql_err)?;
                    // A row of a newer version's signal this build cannot read: skipped.
                    if let Ok(signal) = serde_json::from_str(&json) {
                        states.push((signal, at));
                    }
                }
                let mut counts = BTreeMap::new();
                let mut s = c
                    .prepare("SELECT metric, SUM(n) FROM alert_counts WHERE minute >= ?1 GROUP BY metric")
                    .map_err(sql_err)?;
                let rows = s
                    .query_map([since_ms.div_euclid(60_000)], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                    })
                    .map_err(sql_err)?;
                for row in rows {
                    let (metric, n) = row.map_err(sql_err)?;
                    counts.insert(metric, n.max(0) as u64);
                }
                Ok((states, counts))
            })
            .await
    }
}

#[async_trait]
impl AlertSink for SqliteAlerts {
    async fn record(&self, signal: &Signal, at_ms: i64) -> Result<(), StoreError> {
        log(signal);
        let key = state_key(signal);
        let json = serde_json::to_string(signal)
            .map_err(|e| StoreError::Unavailable(format!("signal not serialisable: {e}")))?;
        let counts: Vec<(&'static str, i64)> = emf::metrics(signal)
            .0
            .into_iter()
            .filter(|(name, value, _)| COUNTED.contains(name) && *value > 0.0)
            .map(|(name, value, _)| (name, value as i64))
            .collect();
        if key.is_none() && counts.is_empty() {
            return Ok(());
        }
        let cutoff = at_ms.max(wabridge_core::clock::now_ms()) - ALERT_RETENTION.as_millis() as i64;
        self.db
            .write(move |t| {
                if let Some(key) = &key {
                    // An older fact delivered late never replaces a newer one.
                    t.execute(
                        "INSERT INTO alert_state (key, signal, at) VALUES (?1, ?2, ?3)
                         ON CONFLICT(key) DO UPDATE SET signal = excluded.signal, at = excluded.at
                         WHERE excluded.at >= alert_state.at",
                        params![key, json, at_ms],
                    )
                    .map_err(sql_err)?;
                }
                for (metric, n) in &counts {
                    t.execute(
                        "INSERT INTO alert_counts (minute, metric, n) VALUES (?1, ?2, ?3)
                         ON CONFLICT(minute, metric) DO UPDATE SET n = n + excluded.n",
                        params![at_ms.div_euclid(60_000), metric, n],
                    )
                    .map_err(sql_err)?;
                }
                t.execute("DELETE FROM alert_state WHERE at < ?1", [cutoff])
                    .map_err(sql_err)?;
                t.execute(
                    "DELETE FROM alert_counts WHERE minute < ?1",
                    [cutoff.div_euclid(60_000)],
                )
                .map_err(sql_err)?;
                Ok(())
            })
            .await
    }
}
