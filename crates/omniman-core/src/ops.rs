//! Ops: the batch language that changes a session (docs/reference.md §4).
//!
//! Parsing is a shape check of the whole batch (types, presence, lengths) that reports every
//! problem with its field path. Semantic errors (`unknown_line_id`, `invalid_qty`…) arise later,
//! while applying, in batch order.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::channel::PricingPolicy;
use crate::error::{Code, DomainError, ErrorCode, FieldErrors, ctx};
use crate::fields::{FieldReader, MAX_DATA_BYTES, MAX_META_BYTES, check_json};
use crate::ids::IdGen;
use crate::money::{Qty, QtyError};
use crate::session::{Item, Session};

pub use crate::data_path::{DEFAULT_DATA_ROOTS, PathRules, RESERVED_DATA_ROOTS, is_reserved_root};

/// A quantity as sent: parsed, or kept raw so the error surfaces in batch order as `invalid_qty`.
#[derive(Clone, Debug, PartialEq)]
pub enum QtyInput {
    /// A valid quantity.
    Valid(Qty),
    /// Anything else, as sent.
    Invalid(Value),
}

impl QtyInput {
    fn from_json(value: &Value) -> QtyInput {
        Qty::from_json(value).map_or_else(|_| QtyInput::Invalid(value.clone()), QtyInput::Valid)
    }

    fn to_json(&self) -> Value {
        match self {
            QtyInput::Valid(q) => Value::String(q.to_string()),
            QtyInput::Invalid(v) => v.clone(),
        }
    }

    fn get(&self) -> Result<Qty, QtyError> {
        match self {
            QtyInput::Valid(q) => Ok(*q),
            QtyInput::Invalid(v) => Qty::from_json(v).and(Err(QtyError::NotANumber)),
        }
    }
}

impl From<Qty> for QtyInput {
    fn from(q: Qty) -> QtyInput {
        QtyInput::Valid(q)
    }
}

/// The most ops one batch of `Op::parse_batch` (a modify) may hold; more is a
/// `validation_error` at `ops` (docs/api.md, "Limits").
pub const MAX_OPS_PER_BATCH: usize = 1_000;

/// One op of a batch: `{"op": "add_line", ...}`. Unknown fields are ignored.
///
/// ```
/// use omniman_core::ops::Op;
/// let ops = Op::parse_batch(&serde_json::json!([
///     {"op": "add_line", "sku": "COFFEE", "qty": 2, "unit_price_q": 450},
///     {"op": "set_data", "path": "customer.name", "value": "Ana"}
/// ])).unwrap();
/// assert_eq!(ops.len(), 2);
/// let err = Op::parse_batch(&serde_json::json!([{"op": "remove_line"}])).unwrap_err();
/// assert!(err.0.contains_key("ops[0].line_id"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Appends a line.
    AddLine {
        /// May be empty: refused as `missing_sku` when applied.
        sku: String,
        /// Quantity.
        qty: QtyInput,
        /// Price of one unit.
        unit_price_q: Option<i64>,
        /// Display name.
        name: Option<String>,
        /// Line data.
        meta: Option<Map<String, Value>>,
    },
    /// Removes a line.
    RemoveLine {
        /// The line.
        line_id: String,
    },
    /// Sets a line's quantity.
    SetQty {
        /// The line.
        line_id: String,
        /// New quantity.
        qty: QtyInput,
    },
    /// Replaces a line's product.
    ReplaceSku {
        /// The line.
        line_id: String,
        /// May be empty: refused as `missing_sku`.
        sku: String,
        /// New unit price.
        unit_price_q: Option<i64>,
        /// New display name.
        name: Option<String>,
        /// New line data (replaces the old wholesale).
        meta: Option<Map<String, Value>>,
    },
    /// Writes a value at a dotted path of `data`.
    SetData {
        /// Dotted path, e.g. `customer.address.city`.
        path: String,
        /// Any JSON value but null.
        value: Value,
    },
    /// Adds one line's quantity to another and removes the first.
    MergeLines {
        /// Removed line.
        from_line_id: String,
        /// Kept line.
        into_line_id: String,
    },
    /// An op name this version does not know; refused as `unsupported_op` when applied.
    Unsupported {
        /// The name as sent.
        op: String,
    },
}

/// The op-specific readers over the shared [`FieldReader`].
impl FieldReader<'_> {
    fn line_id(&mut self, key: &'static str) -> String {
        self.required(key, 64)
    }

    /// `sku` is special: absence and emptiness are the semantic `missing_sku`, not shape errors.
    fn sku(&mut self) -> String {
        self.string("sku", 64).unwrap_or_default()
    }

    /// Any value, `null` included, is kept, so that a bad one surfaces in batch order as
    /// `invalid_qty`.
    fn qty(&mut self) -> QtyInput {
        match self.as_sent("qty") {
            None => {
                self.error("qty", "this field is required");
                QtyInput::Invalid(Value::Null)
            }
            Some(v) => QtyInput::from_json(v),
        }
    }

    fn meta(&mut self) -> Option<Map<String, Value>> {
        self.bounded_object("meta", MAX_META_BYTES).cloned()
    }
}

impl Op {
    /// The op's name as sent.
    pub fn name(&self) -> &str {
        match self {
            Op::AddLine { .. } => "add_line",
            Op::RemoveLine { .. } => "remove_line",
            Op::SetQty { .. } => "set_qty",
            Op::ReplaceSku { .. } => "replace_sku",
            Op::SetData { .. } => "set_data",
            Op::MergeLines { .. } => "merge_lines",
            Op::Unsupported { op } => op,
        }
    }

    /// Shape-checks one op; `prefix` names it in field paths (`ops[3]`).
    fn parse_into(value: &Value, prefix: &str, errors: &mut FieldErrors) -> Option<Op> {
        let Value::Object(obj) = value else {
            errors.add(prefix.to_owned(), "must be an object");
            return None;
        };
        let mut f = FieldReader::at(prefix, obj);
        let name = f.required("op", 64);
        if !f.is_clean() {
            errors.merge(f.finish().err().unwrap_or_default());
            return None;
        }
        let op = match name.as_str() {
            "add_line" => Op::AddLine {
                sku: f.sku(),
                qty: f.qty(),
                unit_price_q: f.integer("unit_price_q"),
                name: f.string("name", 200),
                meta: f.meta(),
            },
            "remove_line" => Op::RemoveLine { line_id: f.line_id("line_id") },
            "set_qty" => Op::SetQty { line_id: f.line_id("line_id"), qty: f.qty() },
            "replace_sku" => Op::ReplaceSku {
                line_id: f.line_id("line_id"),
                sku: f.sku(),
                unit_price_q: f.integer("unit_price_q"),
                name: f.string("name", 200),
                meta: f.meta(),
            },
            "set_data" => {
                let path = f.required("path", 128);
                let value = f.raw("value").cloned().unwrap_or(Value::Null);
                if value.is_null() {
                    f.error("value", "this field is required and may not be null");
                } else if let Err(problem) = check_json(&value, MAX_DATA_BYTES, path.split('.').count()) {
                    // The value's depth in `data` counts the levels of its path.
                    f.error("value", problem);
                }
                Op::SetData { path, value }
            }
            "merge_lines" => {
                Op::MergeLines { from_line_id: f.line_id("from_line_id"), into_line_id: f.line_id("into_line_id") }
            }
            other => Op::Unsupported { op: other.to_owned() },
        };
        match f.finish() {
            Ok(()) => Some(op),
            Err(problems) => {
                errors.merge(problems);
                None
            }
        }
    }

    /// Shape-checks a whole batch (a JSON array of ops), reporting every problem at once.
    pub fn parse_batch(value: &Value) -> Result<Vec<Op>, FieldErrors> {
        let Value::Array(items) = value else {
            return Err(FieldErrors::one("ops", "must be a list of ops"));
        };
        if items.len() > MAX_OPS_PER_BATCH {
            let message = format!("holds {} ops; a batch holds at most {MAX_OPS_PER_BATCH}", items.len());
            return Err(FieldErrors::one("ops", message));
        }
        let mut errors = FieldErrors::default();
        let mut ops = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(op) = Op::parse_into(item, &format!("ops[{i}]"), &mut errors) {
                ops.push(op);
            }
        }
        errors.into_result().map(|()| ops)
    }

    /// Shape-checks a single op.
    pub fn parse(value: &Value) -> Result<Op, FieldErrors> {
        let mut errors = FieldErrors::default();
        let op = Op::parse_into(value, "op", &mut errors);
        match op {
            Some(op) if errors.is_empty() => Ok(op),
            _ => Err(errors),
        }
    }

    /// The op as JSON (`{"op": ..., ...}`); the inverse of [`Op::parse`].
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("op".into(), Value::String(self.name().to_owned()));
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_owned(), v);
        };
        match self {
            Op::AddLine { sku, qty, unit_price_q, name, meta } => {
                put("sku", sku.clone().into());
                put("qty", qty.to_json());
                optional_fields(&mut put, *unit_price_q, name.as_ref(), meta.as_ref());
            }
            Op::ReplaceSku { line_id, sku, unit_price_q, name, meta } => {
                put("line_id", line_id.clone().into());
                put("sku", sku.clone().into());
                optional_fields(&mut put, *unit_price_q, name.as_ref(), meta.as_ref());
            }
            Op::RemoveLine { line_id } => put("line_id", line_id.clone().into()),
            Op::SetQty { line_id, qty } => {
                put("line_id", line_id.clone().into());
                put("qty", qty.to_json());
            }
            Op::SetData { path, value } => {
                put("path", path.clone().into());
                put("value", value.clone());
            }
            Op::MergeLines { from_line_id, into_line_id } => {
                put("from_line_id", from_line_id.clone().into());
                put("into_line_id", into_line_id.clone().into());
            }
            Op::Unsupported { .. } => {}
        }
        Value::Object(m)
    }
}

fn optional_fields(
    put: &mut impl FnMut(&str, Value),
    price: Option<i64>,
    name: Option<&String>,
    meta: Option<&Map<String, Value>>,
) {
    if let Some(p) = price {
        put("unit_price_q", p.into());
    }
    if let Some(n) = name {
        put("name", n.clone().into());
    }
    if let Some(m) = meta {
        put("meta", Value::Object(m.clone()));
    }
}

impl Serialize for Op {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Op {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Op, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Op::parse(&value).map_err(serde::de::Error::custom)
    }
}

/// The semantic error codes of ops (docs/reference.md §4), a subset of [`Code`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpErrorCode {
    /// `sku` absent or empty.
    MissingSku,
    /// Quantity ≤ 0, unparsable, too precise or too large.
    InvalidQty,
    /// External pricing and no price given.
    MissingUnitPriceQ,
    /// No line with that id.
    UnknownLineId,
    /// Merging a line into itself.
    InvalidMerge,
    /// Merging lines of different SKUs.
    SkuMismatch,
    /// A `set_data` path the rules refuse.
    InvalidPath,
    /// An op name this version does not know.
    UnsupportedOp,
}

impl OpErrorCode {
    /// The project code it is.
    pub const fn code(self) -> Code {
        match self {
            OpErrorCode::MissingSku => Code::MissingSku,
            OpErrorCode::InvalidQty => Code::InvalidQty,
            OpErrorCode::MissingUnitPriceQ => Code::MissingUnitPriceQ,
            OpErrorCode::UnknownLineId => Code::UnknownLineId,
            OpErrorCode::InvalidMerge => Code::InvalidMerge,
            OpErrorCode::SkuMismatch => Code::SkuMismatch,
            OpErrorCode::InvalidPath => Code::InvalidPath,
            OpErrorCode::UnsupportedOp => Code::UnsupportedOp,
        }
    }

    /// The stable wire string.
    pub const fn as_str(self) -> &'static str {
        self.code().as_str()
    }
}

/// An op that could not be applied; aborts its whole batch.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("ops[{index}] ({op}): {message}")]
pub struct OpError {
    /// Position in the batch.
    pub index: usize,
    /// The op's name.
    pub op: String,
    /// Stable code.
    pub code: OpErrorCode,
    /// Human message.
    pub message: String,
    /// Details (always includes `op_index`).
    pub context: Map<String, Value>,
}

impl DomainError for OpError {
    fn code(&self) -> ErrorCode<'_> {
        self.code.code().into()
    }
    fn context(&self) -> Map<String, Value> {
        self.context.clone()
    }
}

/// Applies ops to a working copy of a session; the building block of the modify pipeline.
pub(crate) struct OpApplier<'a> {
    pub(crate) session: &'a mut Session,
    pub(crate) ids: &'a mut dyn IdGen,
    pub(crate) path_rules: &'a PathRules,
}

fn qty_error(index: usize, op: &Op, field: &str, err: QtyError, raw: Value) -> OpError {
    OpError {
        index,
        op: op.name().to_owned(),
        code: OpErrorCode::InvalidQty,
        message: format!("{field}: {err}"),
        context: ctx([("op_index", index.into()), ("field", field.into()), ("value", raw)]),
    }
}

impl OpApplier<'_> {
    fn error(index: usize, op: &Op, code: OpErrorCode, message: String, extra: Map<String, Value>) -> OpError {
        let mut context = ctx([("op_index", index.into())]);
        context.extend(extra);
        OpError { index, op: op.name().to_owned(), code, message, context }
    }

    fn position(&self, index: usize, op: &Op, line_id: &str) -> Result<usize, OpError> {
        self.session.items.iter().position(|i| i.line_id == line_id).ok_or_else(|| {
            Self::error(
                index,
                op,
                OpErrorCode::UnknownLineId,
                format!("no line '{line_id}' in this session"),
                ctx([("line_id", line_id.into())]),
            )
        })
    }

    fn require_sku(index: usize, op: &Op, sku: &str) -> Result<(), OpError> {
        if sku.is_empty() {
            return Err(Self::error(index, op, OpErrorCode::MissingSku, "sku is required".into(), Map::new()));
        }
        Ok(())
    }

    fn require_price(&self, index: usize, op: &Op, price: Option<i64>) -> Result<(), OpError> {
        if price.is_none() && self.session.pricing_policy == PricingPolicy::External {
            return Err(Self::error(
                index,
                op,
                OpErrorCode::MissingUnitPriceQ,
                "this channel prices externally: unit_price_q is required".into(),
                Map::new(),
            ));
        }
        Ok(())
    }

    fn qty(index: usize, op: &Op, input: &QtyInput) -> Result<Qty, OpError> {
        input.get().map_err(|e| qty_error(index, op, "qty", e, input.to_json()))
    }

    /// Applies one op; on error the session may be half-changed, so callers work on a copy.
    pub(crate) fn apply(&mut self, index: usize, op: &Op) -> Result<(), OpError> {
        match op {
            Op::AddLine { sku, qty, unit_price_q, name, meta } => {
                Self::require_sku(index, op, sku)?;
                let qty = Self::qty(index, op, qty)?;
                self.require_price(index, op, *unit_price_q)?;
                let mut item = Item {
                    line_id: self.new_line_id(),
                    sku: sku.clone(),
                    name: name.clone().unwrap_or_default(),
                    qty,
                    unit_price_q: *unit_price_q,
                    line_total_q: None,
                    meta: meta.clone().unwrap_or_default(),
                };
                item.reprice();
                self.session.items.push(item);
            }
            Op::RemoveLine { line_id } => {
                let pos = self.position(index, op, line_id)?;
                self.session.items.remove(pos);
            }
            Op::SetQty { line_id, qty } => {
                let qty = Self::qty(index, op, qty)?;
                let pos = self.position(index, op, line_id)?;
                let item = &mut self.session.items[pos];
                item.qty = qty;
                item.reprice();
            }
            Op::ReplaceSku { line_id, sku, unit_price_q, name, meta } => {
                Self::require_sku(index, op, sku)?;
                self.require_price(index, op, *unit_price_q)?;
                let pos = self.position(index, op, line_id)?;
                let item = &mut self.session.items[pos];
                item.sku.clone_from(sku);
                // A given price or name is set. Without a price (only possible on internal sessions)
                // the line is re-priced, and the old product's name goes too unless a new one is given.
                item.unit_price_q = *unit_price_q;
                if let Some(name) = name {
                    item.name.clone_from(name);
                } else if unit_price_q.is_none() {
                    item.name.clear();
                }
                if let Some(meta) = meta {
                    item.meta.clone_from(meta);
                }
                item.reprice();
            }
            Op::SetData { path, value } => self.set_data(index, op, path, value)?,
            Op::MergeLines { from_line_id, into_line_id } => {
                if from_line_id == into_line_id {
                    return Err(Self::error(
                        index,
                        op,
                        OpErrorCode::InvalidMerge,
                        "cannot merge a line into itself".into(),
                        ctx([("line_id", from_line_id.as_str().into())]),
                    ));
                }
                let from = self.position(index, op, from_line_id)?;
                let into = self.position(index, op, into_line_id)?;
                let (from_item, into_item) = (&self.session.items[from], &self.session.items[into]);
                if from_item.sku != into_item.sku {
                    return Err(Self::error(
                        index,
                        op,
                        OpErrorCode::SkuMismatch,
                        format!("cannot merge {} into {}", from_item.sku, into_item.sku),
                        ctx([("from_sku", from_item.sku.as_str().into()), ("into_sku", into_item.sku.as_str().into())]),
                    ));
                }
                let merged = from_item
                    .qty
                    .checked_add(into_item.qty)
                    .ok_or_else(|| qty_error(index, op, "qty", QtyError::TooLarge, Value::Null))?;
                let into_item = &mut self.session.items[into];
                into_item.qty = merged;
                into_item.reprice();
                self.session.items.remove(from);
            }
            Op::Unsupported { op: name } => {
                return Err(Self::error(
                    index,
                    op,
                    OpErrorCode::UnsupportedOp,
                    format!("unsupported op '{name}'"),
                    ctx([("op", name.as_str().into())]),
                ));
            }
        }
        Ok(())
    }

    fn new_line_id(&mut self) -> String {
        loop {
            let id = self.ids.line_id();
            if self.session.line(&id).is_none() {
                return id;
            }
        }
    }

    fn set_data(&mut self, index: usize, op: &Op, path: &str, value: &Value) -> Result<(), OpError> {
        let invalid = |reason: String| {
            Self::error(
                index,
                op,
                OpErrorCode::InvalidPath,
                format!("invalid path '{path}': {reason}"),
                ctx([("path", path.into())]),
            )
        };
        let segments = self.path_rules.check(path).map_err(invalid)?;
        let (last, parents) = segments.split_last().expect("split yields at least one segment");
        let mut node = &mut self.session.data;
        for segment in parents {
            let next = node.entry((*segment).to_owned()).or_insert_with(|| Value::Object(Map::new()));
            node = next
                .as_object_mut()
                .ok_or_else(|| invalid(format!("'{segment}' holds a value that is not an object")))?;
        }
        node.insert((*last).to_owned(), value.clone());
        Ok(())
    }
}
