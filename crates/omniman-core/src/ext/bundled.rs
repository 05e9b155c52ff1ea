//! The extensions Omniman ships: `pricing.item` over a [`PricingBackend`] (a fixed
//! [`PriceList`] or each channel's own [`ChannelPrices`]), `pricing.session_total`, and the
//! [`ActionResolver`] that turns an issue's action into its ops.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{IssueResolver, Modifier, PricingBackend, ResolverFailure};
use crate::channel::{Channel, PricingPolicy};
use crate::context::Ctx;
use crate::error::{Code, Rejection};
use crate::ops::Op;
use crate::session::{Session, set_key};

/// `pricing.item` (order 10): on internal sessions, fills unset prices from a [`PricingBackend`],
/// records one trace entry per priced line, and recomputes those lines' totals.
pub struct ItemPricingModifier {
    backend: Arc<dyn PricingBackend>,
}

impl fmt::Debug for ItemPricingModifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ItemPricingModifier")
    }
}

impl ItemPricingModifier {
    /// Prices from `backend`.
    pub fn new(backend: Arc<dyn PricingBackend>) -> ItemPricingModifier {
        ItemPricingModifier { backend }
    }
}

impl Modifier for ItemPricingModifier {
    fn code(&self) -> &'static str {
        "pricing.item"
    }

    fn order(&self) -> i32 {
        10
    }

    fn apply(&self, channel: &Channel, draft: &mut Session, _ctx: &Ctx) -> Result<(), Rejection> {
        if draft.pricing_policy != PricingPolicy::Internal {
            return Ok(());
        }
        for item in draft.items.iter_mut().filter(|i| i.unit_price_q.is_none()) {
            if let Some(price) = self.backend.get_price(&item.sku, channel) {
                item.unit_price_q = Some(price);
                item.reprice();
                let mut trace = Map::with_capacity(4);
                trace.insert("line_id".into(), item.line_id.clone().into());
                trace.insert("sku".into(), item.sku.clone().into());
                trace.insert("price_q".into(), price.into());
                trace.insert("source".into(), "internal".into());
                draft.pricing_trace.push(Value::Object(trace));
            }
        }
        Ok(())
    }
}

/// `pricing.session_total` (order 50): writes `pricing.total_q` and `pricing.items_count`, keeping
/// other keys.
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionTotalModifier;

impl Modifier for SessionTotalModifier {
    fn code(&self) -> &'static str {
        "pricing.session_total"
    }

    fn order(&self) -> i32 {
        50
    }

    fn apply(&self, _channel: &Channel, draft: &mut Session, _ctx: &Ctx) -> Result<(), Rejection> {
        let total = draft.total_q();
        let count = draft.items_count();
        set_key(&mut draft.pricing, "total_q", total.into());
        set_key(&mut draft.pricing, "items_count", count.into());
        Ok(())
    }
}

/// A fixed price list, handy for tests, demos and small shops.
#[derive(Clone, Debug, Default)]
pub struct PriceList(pub HashMap<String, i64>);

impl PricingBackend for PriceList {
    fn get_price(&self, sku: &str, _channel: &Channel) -> Option<i64> {
        self.0.get(sku).copied()
    }
}

/// Prices from the channel's own `config.prices` object (`{"COFFEE": 450}`, in quanta): a price
/// list kept with the channel (`omniman channels apply`), enough for a demo or a small shop.
///
/// ```
/// use omniman_core::ext::{ChannelPrices, PricingBackend};
/// let channel = omniman_core::testing::channel_with("pos", serde_json::json!({"prices": {"COFFEE": 450}}));
/// assert_eq!(ChannelPrices.get_price("COFFEE", &channel), Some(450));
/// assert_eq!(ChannelPrices.get_price("TEA", &channel), None);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ChannelPrices;

impl PricingBackend for ChannelPrices {
    fn get_price(&self, sku: &str, channel: &Channel) -> Option<i64> {
        channel.config.raw().get("prices")?.get(sku)?.as_i64()
    }
}

/// Resolves issues whose `context.actions[]` carry the ops to run (the stock check's shape):
/// finds the action, refuses it when its `rev` is stale or it has no ops, and returns its ops.
#[derive(Clone, Debug)]
pub struct ActionResolver {
    source: String,
}

impl ActionResolver {
    /// A resolver for issues of `source` (e.g. `stock`).
    pub fn new(source: impl Into<String>) -> ActionResolver {
        ActionResolver { source: source.into() }
    }
}

#[async_trait]
impl IssueResolver for ActionResolver {
    fn source(&self) -> &str {
        &self.source
    }

    async fn resolve(
        &self,
        session: &Session,
        issue: &Value,
        action_id: &str,
        _ctx: &Ctx,
    ) -> Result<Vec<Op>, ResolverFailure> {
        let issue_id = issue.get("id").and_then(Value::as_str).unwrap_or_default();
        let action = issue
            .pointer("/context/actions")
            .and_then(Value::as_array)
            .and_then(|actions| actions.iter().find(|a| a.get("id").and_then(Value::as_str) == Some(action_id)))
            .ok_or_else(|| {
                Rejection::new(Code::ActionNotFound, format!("issue {issue_id} has no action {action_id}"))
                    .with("issue_id", issue_id)
                    .with("action_id", action_id)
            })?;
        if let Some(action_rev) = action.get("rev").and_then(Value::as_i64) {
            if action_rev != session.rev {
                return Err(Rejection::new(Code::StaleAction, "the session changed since this action was offered")
                    .with("action_rev", action_rev)
                    .with("session_rev", session.rev)
                    .into());
            }
        }
        let ops = action.get("ops").cloned().unwrap_or(Value::Array(Vec::new()));
        if ops.as_array().is_none_or(Vec::is_empty) {
            return Err(Rejection::new(Code::NoOps, "this action has nothing to apply")
                .with("action_id", action_id)
                .into());
        }
        Op::parse_batch(&ops)
            .map_err(|e| ResolverFailure::Other(format!("action {action_id} carries invalid ops: {e}")))
    }
}
