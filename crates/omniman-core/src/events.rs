//! The event log: what happened to sessions, orders and directives, in one ordered sequence
//! (docs/events.md).
//!
//! The database writes each event in the transaction of the change it reports, so an event
//! exists exactly when its change does. Readers follow the log by id with an [`EventCursor`],
//! which never passes an id that a transaction still in flight may yet fill: a reader that has
//! seen event 41 has seen every event up to 41, and a client that resumes after 41 misses none.
//!
//! ```
//! use omniman_core::events::{EventCursor, EventRead};
//!
//! let mut cursor = EventCursor::after(0);
//! // Event 2 is visible while event 1's transaction is still in flight (xid 7).
//! let read = EventRead::fixture(&[2], &[7]);
//! assert!(cursor.advance(read).is_empty());
//! // The reader learns where transaction ids stood (the next one to be assigned was 9).
//! assert!(cursor.needs_horizon());
//! cursor.set_horizon(9);
//! // Once xid 7 has ended, the next read shows both, in order.
//! let ids: Vec<i64> = cursor.advance(EventRead::fixture(&[1, 2], &[])).iter().map(|e| e.id).collect();
//! assert_eq!(ids, [1, 2]);
//! assert_eq!(cursor.position(), 2);
//! ```

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ports::StoreResult;

macro_rules! event_types {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, )*) => {
        /// What an event reports. The names are part of the API.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum EventType {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )*
        }

        impl EventType {
            /// Every type, in the order docs/events.md lists them.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            /// The type's name (`order.created`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( EventType::$variant => $name, )*
                }
            }
        }

        impl FromStr for EventType {
            type Err = UnknownEventType;

            fn from_str(name: &str) -> Result<EventType, UnknownEventType> {
                match name {
                    $( $name => Ok(EventType::$variant), )*
                    _ => Err(UnknownEventType(name.to_owned())),
                }
            }
        }
    };
}

event_types! {
    /// A session was opened (`data.rev`).
    SessionOpened => "session.opened",
    /// A session's items or data changed (`data.rev`, the new revision).
    SessionModified => "session.modified",
    /// A session was committed into the order `order_ref`.
    SessionCommitted => "session.committed",
    /// A session was abandoned, by a client or for being idle.
    SessionAbandoned => "session.abandoned",
    /// An order was created (`data.status`, `data.total_q`, `data.currency`).
    OrderCreated => "order.created",
    /// An order moved along its flow (`data.from`, `data.to`).
    OrderStatusChanged => "order.status_changed",
    /// A directive failed for good (`data.directive_id`, `data.topic`, `data.attempts`,
    /// `data.last_error`).
    DirectiveFailed => "directive.failed",
    /// A stock check found lines that cannot be held (`data.rev`, `data.issues`).
    StockShortage => "stock.shortage",
}

impl EventType {
    /// The types a name selects: one type, or every type of a group (`order.*`).
    ///
    /// ```
    /// use omniman_core::events::EventType;
    /// assert_eq!(EventType::select("order.*").unwrap(), [EventType::OrderCreated, EventType::OrderStatusChanged]);
    /// assert_eq!(EventType::select("stock.shortage").unwrap(), [EventType::StockShortage]);
    /// assert!(EventType::select("order.deleted").is_err());
    /// ```
    pub fn select(name: &str) -> Result<Vec<EventType>, UnknownEventType> {
        let Some(group) = name.strip_suffix(".*") else {
            return name.parse().map(|kind| vec![kind]);
        };
        let types: Vec<EventType> =
            EventType::ALL.iter().copied().filter(|t| t.as_str().split('.').next() == Some(group)).collect();
        if types.is_empty() { Err(UnknownEventType(name.to_owned())) } else { Ok(types) }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an [`EventType`]; its message lists the known ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{0}` (known: {names})", names = known_names())]
pub struct UnknownEventType(pub String);

/// Every event type's name, comma-separated.
fn known_names() -> String {
    EventType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
}

/// One event of the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    /// Its place in the log: ids only grow, and a reader sees them in this order.
    pub id: i64,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The channel it happened on (`None` for a directive that names none).
    pub channel_code: Option<String>,
    /// The session it concerns, when it concerns one.
    pub session_key: Option<String>,
    /// The order it concerns, when it concerns one.
    pub order_ref: Option<String>,
    /// The type's own details (see [`EventType`]).
    pub data: Value,
    /// When the change was written.
    pub at: DateTime<Utc>,
}

/// Which events a reader wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these types (`None`: all).
    pub types: Option<Vec<EventType>>,
    /// Only events of these channels (`None`: all, including events of no channel).
    pub channels: Option<Vec<String>>,
}

impl EventFilter {
    /// Whether `event` passes.
    pub fn matches(&self, event: &LogEvent) -> bool {
        let type_ok = self.types.as_ref().is_none_or(|types| types.contains(&event.kind));
        let channel_ok = self
            .channels
            .as_ref()
            .is_none_or(|channels| event.channel_code.as_ref().is_some_and(|code| channels.iter().any(|c| c == code)));
        type_ok && channel_ok
    }
}

/// What one read of the log saw, in one snapshot of the database.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventRead {
    /// The visible events with an id above the asked one, ascending.
    pub events: Vec<LogEvent>,
    /// Transactions listed as in flight when the read was taken (PostgreSQL transaction ids
    /// below [`in_flight_from`](Self::in_flight_from)).
    pub in_flight: Vec<i64>,
    /// Every transaction id from this one on was in flight (or not yet assigned) when the read
    /// was taken: PostgreSQL's snapshot `xmax`, one past the newest ended transaction. `None`
    /// where writers commit one at a time and in id order (SQLite): nothing is ever in flight
    /// for a reader.
    pub in_flight_from: Option<i64>,
}

impl EventRead {
    /// A read of events with these ids (type `session.opened`, no channel), with these
    /// transactions in flight and nothing unlisted (`in_flight_from` one past the newest listed),
    /// for tests and examples. With no transaction in flight, `in_flight_from` is `None`.
    pub fn fixture(ids: &[i64], in_flight: &[i64]) -> EventRead {
        let events = ids
            .iter()
            .map(|&id| LogEvent {
                id,
                kind: EventType::SessionOpened,
                channel_code: None,
                session_key: None,
                order_ref: None,
                data: Value::Null,
                at: DateTime::<Utc>::UNIX_EPOCH,
            })
            .collect();
        let in_flight_from = in_flight.iter().max().map(|newest| newest + 1);
        EventRead { events, in_flight: in_flight.to_vec(), in_flight_from }
    }

    /// Whether `xid` was in flight at this read.
    fn was_in_flight(&self, xid: i64) -> bool {
        self.in_flight.contains(&xid) || self.in_flight_from.is_some_and(|from| xid >= from)
    }
}

/// A missing id the cursor waits for, and the transactions that may still write it.
#[derive(Clone, Debug, PartialEq)]
struct Gap {
    /// The first missing id.
    from: i64,
    /// Missing ids up to this one were missing when the owners were noted.
    through: i64,
    /// The transactions listed in flight then.
    owners: Vec<i64>,
    /// And every transaction from this id on, up to the horizon.
    owners_from: i64,
    /// The next transaction id to be assigned, learned after the read (`None` until then): no
    /// transaction from it on can own the hole.
    horizon: Option<i64>,
}

/// A reader's position in the log, advanced one [`EventRead`] at a time.
///
/// Ids are drawn when a change is written and become visible when its transaction commits, so
/// a read may see id 42 before 41. The cursor stops before such a hole and notes which
/// transactions could own it: those in flight at the read, which are the ones listed and every
/// one from [`EventRead::in_flight_from`] up to the next id to be assigned (the *horizon*,
/// which the reader supplies with [`set_horizon`](Self::set_horizon) when
/// [`needs_horizon`](Self::needs_horizon) says so). The hole is filled once its owner commits,
/// and is known to stay empty (its writer rolled back) once none of them is in flight and it is
/// still there.
#[derive(Clone, Debug, PartialEq)]
pub struct EventCursor {
    position: i64,
    gap: Option<Gap>,
}

impl EventCursor {
    /// A cursor that has seen every event up to `position` (0: none).
    pub fn after(position: i64) -> EventCursor {
        EventCursor { position: position.max(0), gap: None }
    }

    /// The last id delivered: every event up to it has been delivered or never existed.
    pub fn position(&self) -> i64 {
        self.position
    }

    /// Whether the cursor waits for a hole to fill (read again soon).
    pub fn is_waiting(&self) -> bool {
        self.gap.is_some()
    }

    /// Whether the cursor needs to know the next transaction id to be assigned (read it after
    /// the last [`advance`](Self::advance): a later value is as good).
    pub fn needs_horizon(&self) -> bool {
        self.gap.as_ref().is_some_and(|gap| gap.horizon.is_none())
    }

    /// The next transaction id to be assigned, read after the last [`advance`](Self::advance).
    pub fn set_horizon(&mut self, next_xid: i64) {
        if let Some(gap) = &mut self.gap {
            gap.horizon.get_or_insert(next_xid);
        }
    }

    /// The events of `read` that can be delivered now, in order; the position moves past them.
    pub fn advance(&mut self, read: EventRead) -> Vec<LogEvent> {
        let max_seen = read.events.last().map_or(self.position, |e| e.id);
        let mut next = Vec::new();
        let mut delivered = Vec::with_capacity(read.events.len());
        for event in &read.events {
            if event.id <= self.position {
                continue;
            }
            if event.id > self.position + 1 && !self.may_skip_to(event.id, &read, max_seen) {
                break;
            }
            self.position = event.id;
            self.gap = None;
            next.push(event.id);
        }
        delivered.extend(read.events.into_iter().filter(|e| next.contains(&e.id)));
        delivered
    }

    /// Whether the ids between the position and `next` are known to stay empty. A hole seen for
    /// the first time is noted with the transactions in flight now.
    fn may_skip_to(&mut self, next: i64, read: &EventRead, max_seen: i64) -> bool {
        let from = self.position + 1;
        if read.in_flight.is_empty() && read.in_flight_from.is_none() {
            return true;
        }
        let same_hole = self.gap.as_ref().filter(|gap| gap.from == from && next - 1 <= gap.through);
        match same_hole {
            Some(Gap { owners, owners_from, horizon: Some(horizon), .. }) => {
                let ended = |xid: i64| !read.was_in_flight(xid);
                if owners.iter().all(|&owner| ended(owner)) && (*owners_from..*horizon).all(ended) {
                    return true;
                }
            }
            Some(_) => {}
            None => {
                self.gap = Some(Gap {
                    from,
                    through: max_seen,
                    owners: read.in_flight.clone(),
                    owners_from: read.in_flight_from.unwrap_or(i64::MAX),
                    horizon: None,
                });
            }
        }
        false
    }
}

/// Reads the event log. Implemented by `omniman-storage` on both databases; the in-memory store
/// keeps no log.
pub trait EventLog: Send + Sync {
    /// Up to `limit` events with an id above `after`, ascending, and the transactions in flight,
    /// in one snapshot.
    fn read_events(&self, after: i64, limit: usize) -> impl Future<Output = StoreResult<EventRead>> + Send;
    /// The next transaction id to be assigned, or a later one (see [`EventCursor::set_horizon`];
    /// 0 where nothing is ever in flight for a reader).
    fn transaction_horizon(&self) -> impl Future<Output = StoreResult<i64>> + Send;
    /// The highest event id written (0 when there is none).
    fn last_event_id(&self) -> impl Future<Output = StoreResult<i64>> + Send;
}

/// Reads the log after `cursor` and advances it, asking the log for the horizon when the cursor
/// needs it: the events that can be delivered now, in order (see [`EventCursor`]), and whether
/// the read was full (more may follow at once).
pub async fn read_next<L: EventLog + ?Sized>(
    log: &L,
    cursor: &mut EventCursor,
    limit: usize,
) -> StoreResult<(Vec<LogEvent>, bool)> {
    let read = log.read_events(cursor.position(), limit).await?;
    let full = read.events.len() >= limit;
    let events = cursor.advance(read);
    if cursor.needs_horizon() {
        let horizon = log.transaction_horizon().await?;
        cursor.set_horizon(horizon);
    }
    Ok((events, full))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ids(events: &[LogEvent]) -> Vec<i64> {
        events.iter().map(|e| e.id).collect()
    }

    #[test]
    fn names_round_trip() {
        for kind in EventType::ALL {
            assert_eq!(kind.as_str().parse::<EventType>(), Ok(*kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), Value::from(kind.as_str()));
        }
        assert!("order.deleted".parse::<EventType>().is_err());
    }

    #[test]
    fn a_hole_with_nothing_in_flight_is_skipped() {
        let mut cursor = EventCursor::after(0);
        assert_eq!(ids(&cursor.advance(EventRead::fixture(&[1, 3, 4], &[]))), [1, 3, 4]);
        assert_eq!(cursor.position(), 4);
    }

    #[test]
    fn a_hole_waits_for_the_transactions_in_flight_when_it_was_seen() {
        let mut cursor = EventCursor::after(0);
        assert_eq!(ids(&cursor.advance(EventRead::fixture(&[1, 3], &[10, 11]))), [1]);
        assert!(cursor.is_waiting() && cursor.needs_horizon());
        cursor.set_horizon(12);
        // 11 has ended but 10 has not: still waiting, even though a new transaction (12) started.
        assert!(cursor.advance(EventRead::fixture(&[3, 4], &[10, 12])).is_empty());
        // 10 ended without writing id 2 (rolled back); 12 is still in flight but cannot own it.
        assert_eq!(ids(&cursor.advance(EventRead::fixture(&[3, 4], &[12]))), [3, 4]);
        assert!(!cursor.is_waiting());
    }

    /// PostgreSQL lists only the transactions below its snapshot's `xmax`: a newer one in flight
    /// is not listed, and may own the hole all the same.
    #[test]
    fn a_hole_waits_for_unlisted_transactions_up_to_the_horizon() {
        let mut cursor = EventCursor::after(0);
        let unlisted =
            |ids: &[i64], xmax: i64| EventRead { in_flight_from: Some(xmax), ..EventRead::fixture(ids, &[]) };
        // Transaction 58948 drew id 1 and is in flight; 58947 drew id 2 and committed.
        assert!(cursor.advance(unlisted(&[2], 58948)).is_empty());
        assert!(cursor.needs_horizon());
        cursor.set_horizon(58949);
        assert!(cursor.advance(unlisted(&[2], 58948)).is_empty(), "58948 may still be writing id 1");
        assert_eq!(ids(&cursor.advance(unlisted(&[1, 2], 58950))), [1, 2]);
        // Rolled back: once every possible owner has ended, the hole is skipped.
        assert!(cursor.advance(unlisted(&[4], 58951)).is_empty());
        cursor.set_horizon(58952);
        assert_eq!(ids(&cursor.advance(unlisted(&[4], 58953))), [4]);
    }

    #[test]
    fn a_hole_beyond_what_was_seen_is_judged_again() {
        let mut cursor = EventCursor::after(0);
        assert!(cursor.advance(EventRead::fixture(&[3], &[10])).is_empty());
        cursor.set_horizon(11);
        // Ids 1–2 may be skipped now, but 4 was not missing when 10 was noted: 13 may own it.
        assert_eq!(ids(&cursor.advance(EventRead::fixture(&[3, 5], &[13]))), [3]);
        assert!(cursor.needs_horizon());
        assert_eq!(ids(&cursor.advance(EventRead::fixture(&[3, 4, 5], &[]))), [4, 5]);
    }

    #[test]
    fn filters_by_type_and_channel() {
        let mut event = EventRead::fixture(&[1], &[]).events.remove(0);
        event.channel_code = Some("pos".into());
        let only_pos = EventFilter { channels: Some(vec!["pos".into()]), ..EventFilter::default() };
        assert!(only_pos.matches(&event));
        let only_orders = EventFilter { types: Some(vec![EventType::OrderCreated]), ..EventFilter::default() };
        assert!(!only_orders.matches(&event));
        event.channel_code = None;
        assert!(!only_pos.matches(&event));
        assert!(EventFilter::default().matches(&event));
    }

    proptest! {
        /// Writers draw event ids in one order, are given transaction ids in another, and commit
        /// (or roll back) in a third. A reader taking PostgreSQL-like snapshots between commits
        /// (only transactions below `xmax` listed) delivers every committed id exactly once,
        /// ascending.
        #[test]
        fn delivers_each_committed_event_once_in_order(
            xids in Just((100..112i64).collect::<Vec<_>>()).prop_shuffle(),
            commit_order in Just((1..=12i64).collect::<Vec<_>>()).prop_shuffle(),
            rolled_back in proptest::collection::vec(any::<bool>(), 12),
        ) {
            // Writer `id` (drew event id `id`) runs as transaction `xid_of(id)`.
            let xid_of = |id: i64| xids[usize::try_from(id - 1).unwrap()];
            let mut cursor = EventCursor::after(0);
            let mut visible: Vec<i64> = Vec::new();
            let mut ended: Vec<i64> = Vec::new();
            let mut delivered = Vec::new();
            let snapshot = |visible: &[i64], ended: &[i64]| {
                let xmax = ended.iter().max().map_or(100, |newest| newest + 1);
                let listed: Vec<i64> = (100..xmax).filter(|x| !ended.contains(x)).collect();
                EventRead { in_flight_from: Some(xmax), ..EventRead::fixture(visible, &listed) }
            };
            for id in &commit_order {
                ended.push(xid_of(*id));
                if !rolled_back[usize::try_from(*id - 1).unwrap()] {
                    visible.push(*id);
                    visible.sort_unstable();
                }
                delivered.extend(ids(&cursor.advance(snapshot(&visible, &ended))));
                if cursor.needs_horizon() {
                    cursor.set_horizon(112);
                }
            }
            // Every writer has ended. Each hole seen only now needs one more horizon and read,
            // as the reader's next polls give them (a horizon read is itself a transaction).
            for horizon in 112..125 {
                ended.push(horizon);
                delivered.extend(ids(&cursor.advance(snapshot(&visible, &ended))));
                if cursor.needs_horizon() {
                    cursor.set_horizon(horizon + 1);
                }
            }
            prop_assert!(!cursor.is_waiting());
            prop_assert_eq!(delivered, visible);
        }
    }
}
