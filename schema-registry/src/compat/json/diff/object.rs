//! Object schemas: required flags, properties against the content model
//! (open, closed, or partially open through `patternProperties` or an
//! `additionalProperties` schema), dependencies, and size bounds.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::additional::ADDITIONAL_PROPERTIES;
use super::{all_compatible, Difference, Walker, OBJECT_BOUNDS};
use crate::compat::json::model::Node;
use crate::compat::json::pattern;

type Obj = Map<String, Value>;

fn property<'v>(map: &'v Obj, key: &str) -> Option<&'v Value> {
    map.get("properties")?.as_object()?.get(key)
}

fn property_names(map: &Obj) -> impl Iterator<Item = &str> {
    map.get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|p| p.keys().map(String::as_str))
}

fn is_required(map: &Obj, key: &str) -> bool {
    map.get("required")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|k| k.as_str() == Some(key)))
}

fn has_default(schema: &Value) -> bool {
    schema.get("default").is_some()
}

fn pattern_properties(map: &Obj) -> Option<&Obj> {
    map.get("patternProperties")
        .and_then(Value::as_object)
        .filter(|p| !p.is_empty())
}

/// Any property name is allowed, with any value.
fn is_open(map: &Obj) -> bool {
    pattern_properties(map).is_none()
        && ADDITIONAL_PROPERTIES.schema(map).is_none()
        && ADDITIONAL_PROPERTIES.permits(map)
}

/// The schema an unlisted property `key` must match, if any.
fn covering_schema<'v>(map: &'v Obj, key: &str) -> Option<&'v Value> {
    let by_pattern = pattern_properties(map)
        .into_iter()
        .flatten()
        .find(|(p, _)| pattern::finds(p, key))
        .map(|(_, s)| s);
    by_pattern.or_else(|| ADDITIONAL_PROPERTIES.schema(map))
}

impl<'a> Walker<'a> {
    pub(super) fn objects(
        &mut self,
        o: Node<'a>,
        u: Node<'a>,
        a: &'a Obj,
        b: &'a Obj,
    ) -> Vec<Difference> {
        let mut out = self.within("required", |w| w.required(a, b));
        out.extend(self.within("properties", |w| w.properties(o, u, a, b)));
        out.extend(self.within("dependencies", |w| w.dependencies(o, u, a, b)));
        out.extend(self.within(ADDITIONAL_PROPERTIES.keyword, |w| {
            w.additional(&ADDITIONAL_PROPERTIES, o, u, a, b)
        }));
        out.extend(self.bounds(OBJECT_BOUNDS, a, b));
        out
    }

    fn required(&mut self, a: &Obj, b: &Obj) -> Vec<Difference> {
        let mut out = Vec::new();
        for key in property_names(a) {
            let Some(schema) = property(b, key) else {
                continue;
            };
            let kind = match (is_required(a, key), is_required(b, key)) {
                (true, false) => "REQUIRED_ATTRIBUTE_REMOVED",
                (false, true) if has_default(schema) => "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED",
                (false, true) => "REQUIRED_ATTRIBUTE_ADDED",
                _ => continue,
            };
            out.push(self.at_word(key, kind));
        }
        out
    }

    fn properties(&mut self, o: Node<'a>, u: Node<'a>, a: &'a Obj, b: &'a Obj) -> Vec<Difference> {
        let keys: BTreeSet<&str> = property_names(a).chain(property_names(b)).collect();
        let mut out = Vec::new();
        for key in keys {
            let found = self.within(key, |w| match (property(a, key), property(b, key)) {
                (Some(x), None) => w.property_removed(o.child(x), u, b, key),
                (None, Some(y)) => w.property_added(o, a, u.child(y), b, key),
                (x, y) => w.compare(x.map(|x| o.child(x)), y.map(|y| u.child(y))),
            });
            out.extend(found);
        }
        out
    }

    fn property_removed(
        &mut self,
        x: Node<'a>,
        u: Node<'a>,
        b: &'a Obj,
        key: &str,
    ) -> Vec<Difference> {
        if is_open(b) {
            return vec![self.at("PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL")];
        }
        if let Some(cover) = covering_schema(b, key) {
            return self.covered(
                x,
                u.child(cover),
                "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            );
        }
        vec![self.at(if x.is_false_schema() {
            "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL"
        } else {
            "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"
        })]
    }

    fn property_added(
        &mut self,
        o: Node<'a>,
        a: &'a Obj,
        y: Node<'a>,
        b: &Obj,
        key: &str,
    ) -> Vec<Difference> {
        if is_open(a) {
            return vec![self.at(if y.is_empty_schema() {
                "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL"
            } else {
                "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"
            })];
        }
        let mut out = match covering_schema(a, key) {
            Some(cover) => self.covered(
                o.child(cover),
                y,
                "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            ),
            None => Vec::new(),
        };
        let kind = match (is_required(b, key), has_default(y.value)) {
            (true, true) => "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL",
            (true, false) => "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
            (false, _) => "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        };
        out.push(self.at(kind));
        out
    }

    /// Compares a property or item with the schema that covers it on the
    /// other side, adding whether it is covered.
    pub(super) fn covered(
        &mut self,
        from: Node<'a>,
        to: Node<'a>,
        is: &'static str,
        is_not: &'static str,
    ) -> Vec<Difference> {
        let mut out = self.compare(Some(from), Some(to));
        let kind = if all_compatible(&out) { is } else { is_not };
        out.push(self.at(kind));
        out
    }

    fn dependencies(
        &mut self,
        o: Node<'a>,
        u: Node<'a>,
        a: &'a Obj,
        b: &'a Obj,
    ) -> Vec<Difference> {
        let deps = |m: &'a Obj| m.get("dependencies").and_then(Value::as_object);
        let (da, db) = (deps(a), deps(b));
        let lists = |d: Option<&'a Obj>, key: &str| {
            d.and_then(|d| d.get(key))
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .collect::<BTreeSet<&str>>()
                })
        };
        let schemas = |d: Option<&'a Obj>, key: &str| {
            d.and_then(|d| d.get(key))
                .filter(|v| v.is_object() || v.is_boolean())
        };
        let keys: BTreeSet<&str> = da
            .into_iter()
            .chain(db)
            .flat_map(|d| d.keys().map(String::as_str))
            .collect();
        let mut out = Vec::new();
        for key in &keys {
            let kind = match (lists(da, key), lists(db, key)) {
                (None, None) => None,
                (Some(_), None) => Some("DEPENDENCY_ARRAY_REMOVED"),
                (None, Some(_)) => Some("DEPENDENCY_ARRAY_ADDED"),
                (Some(x), Some(y)) if x == y => None,
                (Some(x), Some(y)) if y.is_superset(&x) => Some("DEPENDENCY_ARRAY_EXTENDED"),
                (Some(x), Some(y)) if x.is_superset(&y) => Some("DEPENDENCY_ARRAY_NARROWED"),
                (Some(_), Some(_)) => Some("DEPENDENCY_ARRAY_CHANGED"),
            };
            out.extend(kind.map(|k| self.at_word(key, k)));
        }
        for key in &keys {
            let found = match (schemas(da, key), schemas(db, key)) {
                (None, None) => continue,
                (Some(_), None) => vec![self.at_word(key, "DEPENDENCY_SCHEMA_REMOVED")],
                (None, Some(_)) => vec![self.at_word(key, "DEPENDENCY_SCHEMA_ADDED")],
                (Some(x), Some(y)) => {
                    self.within(key, |w| w.compare(Some(o.child(x)), Some(u.child(y))))
                }
            };
            out.extend(found);
        }
        out
    }
}
