//! Payments (docs/reference.md §8): the `PaymentBackend` trait, a mock backend, and the `payment.capture` and
//! `payment.refund` handlers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use omniman_core::Omniman;
use omniman_core::directive::{Directive, HandlerError, HandlerOutcome};
use omniman_core::error::{Code, DomainError};
use omniman_core::ext::{BackendError, DirectiveHandler, HandlerCtx};
use omniman_core::ports::Store;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{payload_session, payload_str};

/// The answer of a payment operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentResult {
    /// Whether it worked.
    pub success: bool,
    /// The intent.
    pub intent_id: Option<String>,
    /// Capture transaction.
    pub transaction_id: Option<String>,
    /// Refund id.
    pub refund_id: Option<String>,
    /// Amount concerned.
    pub amount_q: Option<i64>,
    /// Why not (`intent_not_found`, `invalid_status`, `not_captured`, `exceeds_captured`…).
    pub error_code: Option<String>,
    /// Backend message.
    pub message: Option<String>,
}

impl PaymentResult {
    fn refused(code: &str, message: impl Into<String>) -> PaymentResult {
        PaymentResult { error_code: Some(code.to_owned()), message: Some(message.into()), ..PaymentResult::default() }
    }
}

/// The state of an intent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentStatus {
    /// `pending`, `authorized`, `captured`, `refunded` or `cancelled`.
    pub status: String,
    /// Intent amount.
    pub amount_q: i64,
    /// Captured so far.
    pub captured_q: i64,
    /// Refunded so far.
    pub refunded_q: i64,
    /// Currency.
    pub currency: String,
    /// Free-form data.
    pub metadata: Map<String, Value>,
}

/// A payment provider.
///
/// `capture` and `refund` take a `reference` the provider must use to deduplicate: handlers pass
/// a stable one per directive, so a re-run after a crash cannot charge or refund twice.
#[async_trait]
pub trait PaymentBackend: Send + Sync {
    /// Creates an intent for `amount_q`.
    async fn create_intent(
        &self,
        amount_q: i64,
        currency: &str,
        reference: Option<&str>,
        metadata: Option<Map<String, Value>>,
    ) -> Result<PaymentResult, BackendError>;
    /// Authorises an intent.
    async fn authorize(&self, intent_id: &str, method: Option<&str>) -> Result<PaymentResult, BackendError>;
    /// Captures (all of, or `amount_q` of) an intent.
    async fn capture(
        &self,
        intent_id: &str,
        amount_q: Option<i64>,
        reference: Option<&str>,
    ) -> Result<PaymentResult, BackendError>;
    /// Refunds (all that is left of, or `amount_q` of) a capture.
    async fn refund(
        &self,
        intent_id: &str,
        amount_q: Option<i64>,
        reason: Option<&str>,
        reference: Option<&str>,
    ) -> Result<PaymentResult, BackendError>;
    /// Cancels an uncaptured intent.
    async fn cancel(&self, intent_id: &str) -> Result<bool, BackendError>;
    /// The intent's state; `None` when unknown.
    async fn get_status(&self, intent_id: &str) -> Result<Option<IntentStatus>, BackendError>;
}

#[derive(Debug, Default)]
struct MockState {
    intents: HashMap<String, IntentStatus>,
    /// Answers already given, by dedup reference.
    answered: HashMap<String, PaymentResult>,
    next: u64,
}

/// An in-process payment provider with the real rules: for tests, demos and development.
#[derive(Debug, Default)]
pub struct MockPayments {
    state: Mutex<MockState>,
}

impl MockPayments {
    /// No intents.
    pub fn new() -> MockPayments {
        MockPayments::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MockState {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}-{}", self.next)
    }

    fn remember(&mut self, reference: Option<&str>, result: PaymentResult) -> PaymentResult {
        if let (Some(r), true) = (reference, result.success) {
            self.answered.insert(r.to_owned(), result.clone());
        }
        result
    }
}

#[async_trait]
impl PaymentBackend for MockPayments {
    async fn create_intent(
        &self,
        amount_q: i64,
        currency: &str,
        _reference: Option<&str>,
        metadata: Option<Map<String, Value>>,
    ) -> Result<PaymentResult, BackendError> {
        let mut state = self.lock();
        let id = state.id("PI");
        state.intents.insert(
            id.clone(),
            IntentStatus {
                status: "pending".into(),
                amount_q,
                captured_q: 0,
                refunded_q: 0,
                currency: currency.to_owned(),
                metadata: metadata.unwrap_or_default(),
            },
        );
        Ok(PaymentResult { success: true, intent_id: Some(id), amount_q: Some(amount_q), ..PaymentResult::default() })
    }

    async fn authorize(&self, intent_id: &str, _method: Option<&str>) -> Result<PaymentResult, BackendError> {
        let mut state = self.lock();
        let Some(intent) = state.intents.get_mut(intent_id) else {
            return Ok(PaymentResult::refused("intent_not_found", format!("no intent {intent_id}")));
        };
        if intent.status != "pending" {
            return Ok(PaymentResult::refused("invalid_status", format!("intent is {}", intent.status)));
        }
        intent.status = "authorized".into();
        Ok(PaymentResult { success: true, intent_id: Some(intent_id.into()), ..PaymentResult::default() })
    }

    async fn capture(
        &self,
        intent_id: &str,
        amount_q: Option<i64>,
        reference: Option<&str>,
    ) -> Result<PaymentResult, BackendError> {
        let mut state = self.lock();
        if let Some(answer) = reference.and_then(|r| state.answered.get(r)) {
            return Ok(answer.clone());
        }
        let tx = state.id("TX");
        let Some(intent) = state.intents.get_mut(intent_id) else {
            return Ok(PaymentResult::refused("intent_not_found", format!("no intent {intent_id}")));
        };
        if !matches!(intent.status.as_str(), "pending" | "authorized") {
            return Ok(PaymentResult::refused("invalid_status", format!("intent is {}", intent.status)));
        }
        let amount = amount_q.unwrap_or(intent.amount_q);
        if amount > intent.amount_q {
            return Ok(PaymentResult::refused("exceeds_amount", "capture exceeds the intent"));
        }
        intent.status = "captured".into();
        intent.captured_q = amount;
        let result = PaymentResult {
            success: true,
            intent_id: Some(intent_id.into()),
            transaction_id: Some(tx),
            amount_q: Some(amount),
            ..PaymentResult::default()
        };
        Ok(state.remember(reference, result))
    }

    async fn refund(
        &self,
        intent_id: &str,
        amount_q: Option<i64>,
        _reason: Option<&str>,
        reference: Option<&str>,
    ) -> Result<PaymentResult, BackendError> {
        let mut state = self.lock();
        if let Some(answer) = reference.and_then(|r| state.answered.get(r)) {
            return Ok(answer.clone());
        }
        let refund_id = state.id("RF");
        let Some(intent) = state.intents.get_mut(intent_id) else {
            return Ok(PaymentResult::refused("intent_not_found", format!("no intent {intent_id}")));
        };
        if intent.status != "captured" {
            return Ok(PaymentResult::refused("not_captured", format!("intent is {}", intent.status)));
        }
        let left = intent.captured_q - intent.refunded_q;
        let amount = amount_q.unwrap_or(left);
        if amount > left {
            return Ok(PaymentResult::refused("exceeds_captured", format!("only {left} left to refund")));
        }
        intent.refunded_q += amount;
        if intent.refunded_q == intent.captured_q {
            intent.status = "refunded".into();
        }
        let result = PaymentResult {
            success: true,
            intent_id: Some(intent_id.into()),
            refund_id: Some(refund_id),
            amount_q: Some(amount),
            ..PaymentResult::default()
        };
        Ok(state.remember(reference, result))
    }

    async fn cancel(&self, intent_id: &str) -> Result<bool, BackendError> {
        let mut state = self.lock();
        Ok(match state.intents.get_mut(intent_id) {
            Some(i) if matches!(i.status.as_str(), "pending" | "authorized") => {
                i.status = "cancelled".into();
                true
            }
            _ => false,
        })
    }

    async fn get_status(&self, intent_id: &str) -> Result<Option<IntentStatus>, BackendError> {
        Ok(self.lock().intents.get(intent_id).cloned())
    }
}

fn transient(e: impl std::fmt::Display) -> HandlerError {
    HandlerError(e.to_string())
}

/// Reads the intent id: the payload's `intent_id`, else the session's `data.payment.intent_id`.
async fn intent_id<S: Store + 'static>(
    hub: &Omniman<S>,
    directive: &Directive,
) -> Result<Option<String>, HandlerError> {
    if let Some(id) = payload_str(directive, "intent_id") {
        return Ok(Some(id.to_owned()));
    }
    let Some(at) = payload_session(directive) else {
        return Ok(None);
    };
    match hub.get_session(Some(&at.channel), &at.key).await {
        Ok(session) => {
            Ok(session.data.get("payment").and_then(|p| p.get("intent_id")).and_then(Value::as_str).map(str::to_owned))
        }
        Err(e) if e.code() == Code::InternalError => Err(transient(e)),
        Err(_) => Ok(None),
    }
}

/// Emits an order event unless one of that type already carries `key = value` (so a re-run does
/// not record the same payment twice).
async fn emit_once<S: Store + 'static>(
    hub: &Omniman<S>,
    order_ref: &str,
    event_type: &str,
    actor: &str,
    key: &str,
    value: &str,
    payload: Map<String, Value>,
) -> Result<(), HandlerError> {
    let events = hub.order_events(order_ref).await.map_err(transient)?;
    let seen =
        events.iter().any(|e| e.event_type == event_type && e.payload.get(key).and_then(Value::as_str) == Some(value));
    if !seen {
        hub.emit_event(order_ref, event_type, actor, payload).await.map_err(transient)?;
    }
    Ok(())
}

fn refusal(result: &PaymentResult) -> String {
    format!(
        "{}: {}",
        result.error_code.as_deref().unwrap_or("payment_error"),
        result.message.as_deref().unwrap_or("refused")
    )
}

/// `payment.capture`: captures the order's intent and records `payment.captured`.
pub struct PaymentCaptureHandler<S> {
    hub: Arc<Omniman<S>>,
    backend: Arc<dyn PaymentBackend>,
}

impl<S> std::fmt::Debug for PaymentCaptureHandler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PaymentCaptureHandler")
    }
}

impl<S: Store + 'static> PaymentCaptureHandler<S> {
    /// A handler capturing through `backend`.
    pub fn new(hub: Arc<Omniman<S>>, backend: Arc<dyn PaymentBackend>) -> PaymentCaptureHandler<S> {
        PaymentCaptureHandler { hub, backend }
    }
}

#[async_trait]
impl<S: Store + 'static> DirectiveHandler for PaymentCaptureHandler<S> {
    fn topic(&self) -> &str {
        "payment.capture"
    }

    async fn handle(&self, directive: &Directive, _ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
        let Some(intent) = intent_id(&self.hub, directive).await? else {
            return Ok(HandlerOutcome::failed("no_intent_id"));
        };
        let Some(status) = self.backend.get_status(&intent).await.map_err(transient)? else {
            return Ok(HandlerOutcome::failed(format!("intent_not_found: no intent {intent}")));
        };
        if matches!(status.status.as_str(), "captured" | "refunded") {
            return Ok(HandlerOutcome::done());
        }
        let reference = format!("directive:{}", directive.id);
        let result = self.backend.capture(&intent, None, Some(&reference)).await.map_err(transient)?;
        if !result.success {
            return Ok(HandlerOutcome::failed(refusal(&result)));
        }
        let transaction_id = result.transaction_id.clone().unwrap_or_default();
        if let Some(order_ref) = payload_str(directive, "order_ref") {
            let payload = json!({"intent_id": intent, "transaction_id": transaction_id, "amount_q": result.amount_q});
            let Value::Object(payload) = payload else { unreachable!("json! object") };
            emit_once(
                &self.hub,
                order_ref,
                "payment.captured",
                "payment.capture",
                "transaction_id",
                &transaction_id,
                payload,
            )
            .await?;
        }
        let mut patch = Map::new();
        patch.insert("transaction_id".into(), transaction_id.into());
        Ok(HandlerOutcome::Done { patch })
    }
}

/// `payment.refund`: refunds the order's capture (all, or the payload's `amount_q`) and records
/// `payment.refunded` with the payload's `reason`.
pub struct PaymentRefundHandler<S> {
    hub: Arc<Omniman<S>>,
    backend: Arc<dyn PaymentBackend>,
}

impl<S> std::fmt::Debug for PaymentRefundHandler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PaymentRefundHandler")
    }
}

impl<S: Store + 'static> PaymentRefundHandler<S> {
    /// A handler refunding through `backend`.
    pub fn new(hub: Arc<Omniman<S>>, backend: Arc<dyn PaymentBackend>) -> PaymentRefundHandler<S> {
        PaymentRefundHandler { hub, backend }
    }
}

#[async_trait]
impl<S: Store + 'static> DirectiveHandler for PaymentRefundHandler<S> {
    fn topic(&self) -> &str {
        "payment.refund"
    }

    async fn handle(&self, directive: &Directive, _ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
        let Some(intent) = intent_id(&self.hub, directive).await? else {
            return Ok(HandlerOutcome::failed("no_intent_id"));
        };
        let Some(status) = self.backend.get_status(&intent).await.map_err(transient)? else {
            return Ok(HandlerOutcome::failed(format!("intent_not_found: no intent {intent}")));
        };
        if status.status == "refunded" {
            return Ok(HandlerOutcome::done());
        }
        let reason = payload_str(directive, "reason");
        let amount = directive.payload.get("amount_q").and_then(Value::as_i64);
        let reference = format!("directive:{}", directive.id);
        let result = self.backend.refund(&intent, amount, reason, Some(&reference)).await.map_err(transient)?;
        if !result.success {
            return Ok(HandlerOutcome::failed(refusal(&result)));
        }
        let refund_id = result.refund_id.clone().unwrap_or_default();
        if let Some(order_ref) = payload_str(directive, "order_ref") {
            let payload = json!({
                "intent_id": intent,
                "refund_id": refund_id,
                "amount_q": result.amount_q,
                "reason": reason.unwrap_or_default(),
            });
            let Value::Object(payload) = payload else { unreachable!("json! object") };
            emit_once(&self.hub, order_ref, "payment.refunded", "payment.refund", "refund_id", &refund_id, payload)
                .await?;
        }
        let mut patch = Map::new();
        patch.insert("refund_id".into(), refund_id.into());
        Ok(HandlerOutcome::Done { patch })
    }
}
