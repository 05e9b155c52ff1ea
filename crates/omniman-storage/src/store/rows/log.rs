//! `events` rows: the event log.

use chrono::{DateTime, Utc};
use diesel::Queryable;
use omniman_core::error::StoreError;
use omniman_core::events::{EventRead, LogEvent};
use serde_json::Value;

use super::corrupt;

/// `events.*`, in column order.
#[derive(Debug, Queryable)]
pub(crate) struct LogEventRow {
    pub id: i64,
    pub event_type: String,
    pub channel_code: Option<String>,
    pub session_key: Option<String>,
    pub order_ref: Option<String>,
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

impl LogEventRow {
    pub(crate) fn into_event(self) -> Result<LogEvent, StoreError> {
        let kind = self.event_type.parse().map_err(|e| corrupt("event type", e))?;
        Ok(LogEvent {
            id: self.id,
            kind,
            channel_code: self.channel_code,
            session_key: self.session_key,
            order_ref: self.order_ref,
            data: self.data,
            at: self.created_at,
        })
    }
}

/// Rows read with the transactions in flight at the read (`xmax;xip,xip,…`, the same on every
/// row; empty on SQLite).
pub(crate) fn event_read(rows: Vec<(LogEventRow, String)>) -> Result<EventRead, StoreError> {
    let xid = |text: &str| text.parse::<i64>().map_err(|e| corrupt("transaction id", e));
    let (in_flight_from, in_flight) = match rows.first().and_then(|(_, text)| text.split_once(';')) {
        Some((xmax, listed)) => {
            let listed = listed.split(',').filter(|x| !x.is_empty()).map(xid).collect::<Result<_, _>>()?;
            (Some(xid(xmax)?), listed)
        }
        None => (None, Vec::new()),
    };
    let events = rows.into_iter().map(|(row, _)| row.into_event()).collect::<Result<_, _>>()?;
    Ok(EventRead { events, in_flight, in_flight_from })
}
