//! The stock check flow (docs/reference.md §7): `stock.hold` reserves what a session needs and writes the
//! result back as the `stock` check; `stock.commit` turns the holds into sales after commit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use omniman_core::Omniman;
use omniman_core::directive::{Directive, HandlerError, HandlerOutcome};
use omniman_core::error::{Code, DomainError};
use omniman_core::ext::{
    Alternative, Availability, BackendError, DirectiveHandler, HandlerCtx, HoldResult, StockBackend,
};
use omniman_core::ids::{IdGen, RandomIds};
use omniman_core::money::{Qty, qty_or_zero};
use omniman_core::ports::Store;
use omniman_core::session::SessionState;
use serde_json::{Map, Value, json};

use super::{payload_session, payload_str};

/// How long a hold lasts.
pub const HOLD_TTL: TimeDelta = TimeDelta::minutes(15);

fn transient(e: impl std::fmt::Display) -> HandlerError {
    HandlerError(e.to_string())
}

/// `stock.hold`: releases the session's previous holds, holds each SKU's total, raises a blocking
/// `stock.insufficient` issue per short line, and writes the result back at the directive's rev.
pub struct StockHoldHandler<S> {
    hub: Arc<Omniman<S>>,
    backend: Arc<dyn StockBackend>,
    ids: Mutex<RandomIds>,
}

impl<S> std::fmt::Debug for StockHoldHandler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StockHoldHandler")
    }
}

impl<S: Store + 'static> StockHoldHandler<S> {
    /// A handler writing through `hub`, holding stock in `backend`.
    pub fn new(hub: Arc<Omniman<S>>, backend: Arc<dyn StockBackend>) -> StockHoldHandler<S> {
        StockHoldHandler { hub, backend, ids: Mutex::new(RandomIds::from_entropy()) }
    }

    fn action_id(&self) -> String {
        self.ids.lock().unwrap_or_else(PoisonError::into_inner).action_id()
    }

    /// One blocking issue for a short line, with `set_qty` (when some is available) and
    /// `remove_line` actions pinned to `rev`.
    fn shortage_issue(&self, line: &Value, available: Option<Qty>, message: &str, rev: i64) -> Value {
        let line_id = line.get("line_id").cloned().unwrap_or(Value::Null);
        let mut actions = Vec::new();
        if let Some(available) = available {
            actions.push(json!({
                "id": self.action_id(),
                "label": format!("Change quantity to {available}"),
                "rev": rev,
                "ops": [{"op": "set_qty", "line_id": line_id, "qty": available.to_string()}],
            }));
        }
        actions.push(json!({
            "id": self.action_id(),
            "label": "Remove item",
            "rev": rev,
            "ops": [{"op": "remove_line", "line_id": line_id}],
        }));
        json!({
            "source": "stock",
            "code": "stock.insufficient",
            "blocking": true,
            "message": message,
            "context": {
                "line_id": line_id,
                "sku": line.get("sku").cloned().unwrap_or(Value::Null),
                "requested_qty": line.get("qty").cloned().unwrap_or(Value::Null),
                "available_qty": qty_or_zero(available),
                "actions": actions,
            }
        })
    }
}

/// SKUs with their summed quantity, in order of first appearance.
fn totals_per_sku(items: &[Value]) -> Vec<(String, i64)> {
    let mut order: Vec<(String, i64)> = Vec::new();
    for item in items {
        let Some(sku) = item.get("sku").and_then(Value::as_str) else { continue };
        let Some(qty) = item.get("qty").and_then(|q| Qty::from_json(q).ok()) else { continue };
        match order.iter_mut().find(|(s, _)| s == sku) {
            Some((_, total)) => *total += qty.millis(),
            None => order.push((sku.to_owned(), qty.millis())),
        }
    }
    order
}

#[async_trait]
impl<S: Store + 'static> DirectiveHandler for StockHoldHandler<S> {
    fn topic(&self) -> &str {
        "stock.hold"
    }

    async fn handle(&self, directive: &Directive, ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
        let Some(at) = payload_session(directive) else {
            return Ok(HandlerOutcome::failed("payload lacks a well-formed channel_code or session_key"));
        };
        let expected_rev = directive.payload.get("rev").and_then(Value::as_i64).unwrap_or(-1);
        let session = match self.hub.get_session(Some(&at.channel), &at.key).await {
            Ok(s) => s,
            Err(e) if e.code() == Code::InternalError => return Err(transient(e)),
            Err(_) => return Ok(HandlerOutcome::failed(format!("Session not found: {at}"))),
        };
        if session.rev != expected_rev {
            return Ok(HandlerOutcome::failed(format!(
                "Stale directive: expected rev {expected_rev}, found {}",
                session.rev
            )));
        }
        if session.state != SessionState::Open {
            return Ok(HandlerOutcome::done());
        }
        self.backend.release_holds_for_reference(&at.key).await.map_err(transient)?;

        let items: Vec<Value> = session.items.iter().map(|i| serde_json::to_value(i).unwrap_or_default()).collect();
        let expires_at = ctx.now + HOLD_TTL;
        let mut result_items = Vec::new();
        let mut holds = Vec::new();
        let mut issues = Vec::new();
        for (sku, millis) in totals_per_sku(&items) {
            let Some(qty) = Qty::from_millis(millis) else { continue };
            let availability = self.backend.check_availability(&sku, qty, None).await.map_err(transient)?;
            let hold = if availability.available {
                Some(self.backend.create_hold(&sku, qty, Some(expires_at), Some(&at.key)).await.map_err(transient)?)
            } else {
                None
            };
            let held = hold.as_ref().filter(|h| h.success && h.hold_id.is_some());
            result_items.push(json!({
                "sku": sku,
                "qty": qty.to_string(),
                "available": held.is_some(),
                "available_qty": qty_or_zero(availability.available_qty),
            }));
            if let Some(h) = held {
                let mut entry = json!({"sku": sku, "hold_id": h.hold_id, "qty": qty.to_string()});
                if let Some(at) = h.expires_at {
                    entry["expires_at"] = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into();
                }
                holds.push(entry);
                continue;
            }
            // A failed hold means nothing can be had right now.
            let available = if hold.is_some() { None } else { availability.available_qty };
            let message = hold
                .as_ref()
                .and_then(|h| h.message.clone())
                .or(availability.message.clone())
                .unwrap_or_else(|| format!("Not enough {sku} in stock"));
            for line in items.iter().filter(|i| i.get("sku").and_then(Value::as_str) == Some(sku.as_str())) {
                issues.push(self.shortage_issue(line, available, &message, session.rev));
            }
        }
        let mut result = json!({"items": result_items, "holds": holds});
        let earliest = holds
            .iter()
            .filter_map(|h| h.get("expires_at").and_then(Value::as_str))
            .filter_map(|s| DateTime::parse_from_rfc3339(s).ok())
            .min();
        if let Some(at) = earliest {
            result["hold_expires_at"] =
                at.with_timezone(&Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into();
        }
        let applied =
            self.hub.apply_check_result(&at, expected_rev, "stock", result, issues).await.map_err(transient)?;
        if !applied {
            return Ok(HandlerOutcome::failed("stale_rev"));
        }
        let mut patch = Map::new();
        patch.insert("holds".into(), Value::Array(holds));
        Ok(HandlerOutcome::Done { patch })
    }
}

/// `stock.commit`: fulfils the holds of a committed order (from the payload, else the session's
/// stock check), with the order ref as reference. Fulfilling is idempotent in the backend.
pub struct StockCommitHandler<S> {
    hub: Arc<Omniman<S>>,
    backend: Arc<dyn StockBackend>,
}

impl<S> std::fmt::Debug for StockCommitHandler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StockCommitHandler")
    }
}

impl<S: Store + 'static> StockCommitHandler<S> {
    /// A handler reading through `hub`, fulfilling in `backend`.
    pub fn new(hub: Arc<Omniman<S>>, backend: Arc<dyn StockBackend>) -> StockCommitHandler<S> {
        StockCommitHandler { hub, backend }
    }
}

#[async_trait]
impl<S: Store + 'static> DirectiveHandler for StockCommitHandler<S> {
    fn topic(&self) -> &str {
        "stock.commit"
    }

    async fn handle(&self, directive: &Directive, _ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
        let order_ref = payload_str(directive, "order_ref");
        let mut holds = directive.payload.get("holds").and_then(Value::as_array).cloned().unwrap_or_default();
        if holds.is_empty() {
            if let Some(at) = payload_session(directive) {
                match self.hub.get_session(Some(&at.channel), &at.key).await {
                    Ok(session) => {
                        holds = session
                            .data
                            .get("checks")
                            .and_then(|c| c.pointer("/stock/result/holds"))
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default();
                    }
                    Err(e) if e.code() == Code::InternalError => return Err(transient(e)),
                    Err(_) => {}
                }
            }
        }
        let ids: Vec<&str> = holds.iter().filter_map(|h| h.get("hold_id").and_then(Value::as_str)).collect();
        let mut errors = Vec::new();
        for id in &ids {
            match self.backend.fulfill_hold(id, order_ref).await {
                Ok(true) => {}
                Ok(false) => errors.push(format!("{id}: not found or released")),
                Err(e) => errors.push(format!("{id}: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(HandlerOutcome::done())
        } else {
            Ok(HandlerOutcome::failed(format!(
                "Fulfill errors ({}/{}): {}",
                errors.len(),
                ids.len(),
                errors.join("; ")
            )))
        }
    }
}

#[derive(Debug, Clone)]
struct MemoryHold {
    sku: String,
    qty: i64,
    reference: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    state: HoldState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldState {
    Active,
    Released,
    Fulfilled,
}

#[derive(Debug, Default)]
struct MemoryStockState {
    on_hand: HashMap<String, i64>,
    holds: HashMap<String, MemoryHold>,
    next: u64,
}

/// An in-process stock backend: levels per SKU and holds. For tests, demos and embedding; the
/// server uses the database-backed one.
#[derive(Debug, Default)]
pub struct MemoryStock {
    state: Mutex<MemoryStockState>,
}

impl MemoryStock {
    /// An empty backend (every SKU at zero).
    pub fn new() -> MemoryStock {
        MemoryStock::default()
    }

    /// Sets the quantity on hand of a SKU.
    pub fn set_level(&self, sku: &str, qty: Qty) {
        self.lock().on_hand.insert(sku.to_owned(), qty.millis());
    }

    /// Quantity on hand (fulfilled holds are deducted).
    pub fn on_hand(&self, sku: &str) -> i64 {
        self.lock().on_hand.get(sku).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryStockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MemoryStockState {
    fn held(&self, sku: &str, now: DateTime<Utc>) -> i64 {
        self.holds
            .values()
            .filter(|h| h.sku == sku && h.state == HoldState::Active && h.expires_at.is_none_or(|e| e > now))
            .map(|h| h.qty)
            .sum()
    }

    fn available(&self, sku: &str, now: DateTime<Utc>) -> i64 {
        (self.on_hand.get(sku).copied().unwrap_or(0) - self.held(sku, now)).max(0)
    }
}

#[async_trait]
impl StockBackend for MemoryStock {
    async fn check_availability(
        &self,
        sku: &str,
        qty: Qty,
        _date: Option<chrono::NaiveDate>,
    ) -> Result<Availability, BackendError> {
        Ok(Availability::for_request(sku, qty, self.lock().available(sku, Utc::now())))
    }

    async fn create_hold(
        &self,
        sku: &str,
        qty: Qty,
        expires_at: Option<DateTime<Utc>>,
        reference: Option<&str>,
    ) -> Result<HoldResult, BackendError> {
        let mut state = self.lock();
        if state.available(sku, Utc::now()) < qty.millis() {
            return Ok(HoldResult::insufficient(sku));
        }
        state.next += 1;
        let hold_id = format!("HOLD-{}", state.next);
        state.holds.insert(
            hold_id.clone(),
            MemoryHold {
                sku: sku.to_owned(),
                qty: qty.millis(),
                reference: reference.map(str::to_owned),
                expires_at,
                state: HoldState::Active,
            },
        );
        Ok(HoldResult::held(hold_id, expires_at))
    }

    async fn release_hold(&self, hold_id: &str) -> Result<bool, BackendError> {
        let mut state = self.lock();
        Ok(match state.holds.get_mut(hold_id) {
            Some(h) if h.state == HoldState::Active => {
                h.state = HoldState::Released;
                true
            }
            _ => false,
        })
    }

    async fn fulfill_hold(&self, hold_id: &str, reference: Option<&str>) -> Result<bool, BackendError> {
        let mut state = self.lock();
        let Some(hold) = state.holds.get(hold_id).cloned() else { return Ok(false) };
        match hold.state {
            HoldState::Fulfilled => Ok(true),
            HoldState::Released => Ok(false),
            HoldState::Active => {
                *state.on_hand.entry(hold.sku.clone()).or_insert(0) -= hold.qty;
                if let Some(h) = state.holds.get_mut(hold_id) {
                    h.state = HoldState::Fulfilled;
                    if let Some(r) = reference {
                        h.reference = Some(r.to_owned());
                    }
                }
                Ok(true)
            }
        }
    }

    async fn get_alternatives(&self, _sku: &str, _qty: Qty) -> Result<Vec<Alternative>, BackendError> {
        Ok(Vec::new())
    }

    async fn release_holds_for_reference(&self, reference: &str) -> Result<u64, BackendError> {
        let mut state = self.lock();
        let mut count = 0;
        for h in state.holds.values_mut() {
            if h.state == HoldState::Active && h.reference.as_deref() == Some(reference) {
                h.state = HoldState::Released;
                count += 1;
            }
        }
        Ok(count)
    }
}
