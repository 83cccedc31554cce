//! `additionalProperties` and `additionalItems`: the same four-way change
//! in SchemaDiff, under each keyword's own names.

use serde_json::{Map, Value};

use super::{Difference, Walker};
use crate::compat::json::model::Node;

type Obj = Map<String, Value>;

/// An "additional" keyword and the names SchemaDiff gives its changes.
pub(super) struct Additional {
    pub keyword: &'static str,
    removed: &'static str,
    added: &'static str,
    narrowed: &'static str,
    extended: &'static str,
}

pub(super) const ADDITIONAL_PROPERTIES: Additional = Additional {
    keyword: "additionalProperties",
    removed: "ADDITIONAL_PROPERTIES_REMOVED",
    added: "ADDITIONAL_PROPERTIES_ADDED",
    narrowed: "ADDITIONAL_PROPERTIES_NARROWED",
    extended: "ADDITIONAL_PROPERTIES_EXTENDED",
};

pub(super) const ADDITIONAL_ITEMS: Additional = Additional {
    keyword: "additionalItems",
    removed: "ADDITIONAL_ITEMS_REMOVED",
    added: "ADDITIONAL_ITEMS_ADDED",
    narrowed: "ADDITIONAL_ITEMS_NARROWED",
    extended: "ADDITIONAL_ITEMS_EXTENDED",
};

impl Additional {
    /// The keyword is not `false`.
    pub fn permits(&self, map: &Obj) -> bool {
        map.get(self.keyword) != Some(&Value::Bool(false))
    }

    /// The keyword's schema, when given as a schema object.
    pub fn schema<'v>(&self, map: &'v Obj) -> Option<&'v Value> {
        map.get(self.keyword).filter(|v| v.is_object())
    }
}

impl<'a> Walker<'a> {
    /// The change of keyword `k` between `a` (at node `o`) and `b` (at `u`).
    pub(super) fn additional(
        &mut self,
        k: &Additional,
        o: Node<'a>,
        u: Node<'a>,
        a: &'a Obj,
        b: &'a Obj,
    ) -> Vec<Difference> {
        let (pa, pb) = (k.permits(a), k.permits(b));
        if pa != pb {
            return vec![self.at(if pa { k.removed } else { k.added })];
        }
        match (k.schema(a), k.schema(b)) {
            (None, Some(_)) => vec![self.at(k.narrowed)],
            (Some(_), None) => vec![self.at(k.extended)],
            (x, y) => self.compare(x.map(|x| o.child(x)), y.map(|y| u.child(y))),
        }
    }
}
