//! Orders after their commit: lookup, status transitions along the channel's flow, and events.

use serde_json::{Map, Value};

use super::{MAX_ATTEMPTS, Omniman};
use crate::channel::Channel;
use crate::context::Caller;
use crate::error::{FieldErrors, StoreError};
use crate::order::{NewEvent, Order, OrderEvent, OrderFlow, TransitionError, plan_transition};
use crate::ports::Store;

/// A transitioned order, its channel (for `allowed_transitions`) and the status it left.
#[derive(Clone, Debug, PartialEq)]
pub struct Transitioned {
    /// The order after the transition.
    pub order: Order,
    /// The order's channel.
    pub channel: Channel,
    /// The status before.
    pub previous_status: String,
}

impl<S: Store> Omniman<S> {
    /// An order with its channel.
    pub async fn order(&self, order_ref: &str) -> Result<(Channel, Order), TransitionError> {
        self.store
            .order_by_ref(order_ref)
            .await?
            .ok_or_else(|| TransitionError::OrderNotFound { order_ref: order_ref.to_owned() })
    }

    /// Moves an order to `new_status` along its channel's flow (docs/reference.md §10).
    pub async fn transition_order(
        &self,
        order_ref: &str,
        new_status: &str,
        note: Option<&str>,
        caller: &Caller,
    ) -> Result<Transitioned, TransitionError> {
        let mut errors = FieldErrors::default();
        if new_status.is_empty() || new_status.chars().count() > 32 {
            errors.add("status", "must be 1 to 32 characters");
        }
        if note.is_some_and(|n| n.chars().count() > 1000) {
            errors.add("note", "at most 1000 characters");
        }
        errors.into_result().map_err(TransitionError::Validation)?;
        until_written!(format!("order {order_ref}"), {
            let (channel, order) = self.order(order_ref).await?;
            let now = self.clock.now();
            let flow = OrderFlow::for_channel(&channel);
            let plan = plan_transition(order, &flow, new_status, &caller.actor, note, now)?;
            if !self.store.transition(&plan).await? {
                continue;
            }
            self.hooks("order_changed", |h| h.order_changed(&plan.order, "status_changed", &caller.actor));
            Some(Transitioned { order: plan.order, channel, previous_status: plan.expected_status })
        })
    }

    /// Appends an event to an order.
    pub async fn emit_event(
        &self,
        order_ref: &str,
        event_type: &str,
        actor: &str,
        payload: Map<String, Value>,
    ) -> Result<OrderEvent, TransitionError> {
        if event_type.is_empty() || event_type.chars().count() > 64 {
            return Err(TransitionError::Validation(FieldErrors::one("type", "must be 1 to 64 characters")));
        }
        let (_, order) = self.order(order_ref).await?;
        let event = NewEvent {
            event_type: event_type.to_owned(),
            actor: actor.to_owned(),
            payload,
            created_at: self.clock.now(),
        };
        Ok(self.store.append_event(order.id, &event).await?)
    }

    /// Every event of an order, by `seq`.
    pub async fn order_events(&self, order_ref: &str) -> Result<Vec<OrderEvent>, TransitionError> {
        let (_, order) = self.order(order_ref).await?;
        Ok(self.store.list_events(order.id).await?)
    }
}
