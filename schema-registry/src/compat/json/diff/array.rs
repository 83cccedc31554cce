//! Array schemas: the all-items schema, tuple items against the content
//! model (open, closed, or partially open through an `additionalItems` or
//! `unevaluatedItems` schema), and the size and uniqueness bounds.

use serde_json::{Map, Value};

use super::additional::ADDITIONAL_ITEMS;
use super::{Difference, Walker, ARRAY_BOUNDS};
use crate::compat::json::model::Node;

type Obj = Map<String, Value>;

fn is_schema(v: &&Value) -> bool {
    v.is_object() || v.is_boolean()
}

/// `items` as one schema for every item.
fn all_items(map: &Obj) -> Option<&Value> {
    map.get("items").filter(is_schema)
}

/// `items` as a list of positional schemas.
fn tuple(map: &Obj) -> &[Value] {
    map.get("items")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn unevaluated(map: &Obj) -> Option<&Value> {
    map.get("unevaluatedItems").filter(is_schema)
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Any further item is allowed, with any value.
fn is_open(map: &Obj) -> bool {
    ADDITIONAL_ITEMS.permits(map)
        && ADDITIONAL_ITEMS.schema(map).is_none()
        && unevaluated(map).is_none_or(is_empty_value)
}

/// The schema items past the tuple must match, if any.
fn covering_schema(map: &Obj) -> Option<&Value> {
    ADDITIONAL_ITEMS.schema(map).or_else(|| {
        if map.contains_key("additionalItems") {
            None
        } else {
            unevaluated(map).filter(|v| v.is_object())
        }
    })
}

impl<'a> Walker<'a> {
    pub(super) fn arrays(
        &mut self,
        o: Node<'a>,
        u: Node<'a>,
        a: &'a Obj,
        b: &'a Obj,
    ) -> Vec<Difference> {
        let mut out = self.within("items", |w| {
            w.compare(
                all_items(a).map(|x| o.child(x)),
                all_items(b).map(|y| u.child(y)),
            )
        });
        out.extend(self.tuples(o, u, a, b));
        out.extend(self.within(ADDITIONAL_ITEMS.keyword, |w| {
            w.additional(&ADDITIONAL_ITEMS, o, u, a, b)
        }));
        out.extend(self.unevaluated_items(o, u, a, b));
        out.extend(self.bounds(ARRAY_BOUNDS, a, b));
        let unique = |m: &Obj| m.get("uniqueItems") == Some(&Value::Bool(true));
        if unique(a) != unique(b) {
            let kind = if unique(a) {
                "UNIQUE_ITEMS_REMOVED"
            } else {
                "UNIQUE_ITEMS_ADDED"
            };
            out.push(self.at_word("uniqueItems", kind));
        }
        out
    }

    fn tuples(&mut self, o: Node<'a>, u: Node<'a>, a: &'a Obj, b: &'a Obj) -> Vec<Difference> {
        let (ta, tb) = (tuple(a), tuple(b));
        let mut out = Vec::new();
        for i in 0..ta.len().max(tb.len()) {
            let segment = format!("items/{i}");
            let found = self.within(&segment, |w| match (ta.get(i), tb.get(i)) {
                (Some(x), Some(y)) => w.compare(Some(o.child(x)), Some(u.child(y))),
                (Some(x), None) => w.item_removed(o.child(x), u, b),
                (None, Some(y)) => w.item_added(o, a, u.child(y)),
                (None, None) => Vec::new(),
            });
            out.extend(found);
        }
        out
    }

    fn item_removed(&mut self, x: Node<'a>, u: Node<'a>, b: &'a Obj) -> Vec<Difference> {
        if is_open(b) {
            return vec![self.at("ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL")];
        }
        if let Some(cover) = covering_schema(b) {
            return self.covered(
                x,
                u.child(cover),
                "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            );
        }
        vec![self.at(if x.is_false_schema() {
            "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL"
        } else {
            "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL"
        })]
    }

    fn item_added(&mut self, o: Node<'a>, a: &'a Obj, y: Node<'a>) -> Vec<Difference> {
        if is_open(a) {
            return vec![self.at(if y.is_empty_schema() {
                "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL"
            } else {
                "ITEM_ADDED_TO_OPEN_CONTENT_MODEL"
            })];
        }
        match covering_schema(a) {
            Some(cover) => self.covered(
                o.child(cover),
                y,
                "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            ),
            None => vec![self.at("ITEM_ADDED_TO_CLOSED_CONTENT_MODEL")],
        }
    }

    fn unevaluated_items(
        &mut self,
        o: Node<'a>,
        u: Node<'a>,
        a: &'a Obj,
        b: &'a Obj,
    ) -> Vec<Difference> {
        let (x, y) = (unevaluated(a), unevaluated(b));
        let is_false = |v: &Value| *v == Value::Bool(false);
        let kind = match (x, y) {
            (None, None) => return Vec::new(),
            (None, Some(y)) if is_false(y) => "UNEVALUATED_ITEMS_REMOVED",
            (None, Some(_)) => "UNEVALUATED_ITEMS_NARROWED",
            (Some(x), None) if is_false(x) => "UNEVALUATED_ITEMS_ADDED",
            (Some(_), None) => "UNEVALUATED_ITEMS_EXTENDED",
            (Some(x), Some(y)) if is_false(x) && !is_false(y) => "UNEVALUATED_ITEMS_ADDED",
            (Some(x), Some(y)) if !is_false(x) && is_false(y) => "UNEVALUATED_ITEMS_REMOVED",
            (Some(x), Some(y)) if is_empty_value(x) && !is_empty_value(y) => {
                "UNEVALUATED_ITEMS_NARROWED"
            }
            (Some(x), Some(y)) if !is_empty_value(x) && is_empty_value(y) => {
                "UNEVALUATED_ITEMS_EXTENDED"
            }
            (Some(x), Some(y)) => {
                return self.within("unevaluatedItems", |w| {
                    w.compare(Some(o.child(x)), Some(u.child(y)))
                })
            }
        };
        vec![self.at_word("unevaluatedItems", kind)]
    }
}
