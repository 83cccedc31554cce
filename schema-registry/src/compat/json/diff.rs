//! The walk over two schemas that lists their differences, deciding as
//! Confluent's `SchemaDiff` does (see the module docs of `json`).
//!
//! Each comparison returns its differences, each with the JSON path where
//! it was found; a caller that tries an alternative (a branch of a union, a
//! pattern that covers a removed property) compares into a fresh list and
//! keeps it or not. A pair of schemas met again while still being compared
//! (recursion through `$ref`) counts as compatible; depth and total work
//! are bounded, and running out is reported as an incompatible difference.

use std::fmt;

use serde_json::{Map, Value};

use super::model::{Crit, Node, Shape};

mod additional;
mod array;
mod combined;
mod object;

/// Deepest nesting of comparisons (recursive schemas can nest deeper than
/// the documents themselves). A level takes a few KiB of stack in debug
/// builds, so this stays well inside a 2 MiB thread stack.
const MAX_COMPARE_DEPTH: usize = 100;
/// Most schema pairs compared for one check.
const MAX_COMPARISONS: usize = 100_000;

/// Reported when the bounds above are hit.
const TOO_COMPLEX: &str = "SCHEMA_TOO_COMPLEX_TO_COMPARE";
/// Reported when a `$ref` does not resolve (parse checks they do).
const UNRESOLVED: &str = "UNRESOLVED_REFERENCE";

/// The difference kinds that keep data valid under the new schema.
const COMPATIBLE: &[&str] = &[
    "ID_CHANGED",
    "DESCRIPTION_CHANGED",
    "TITLE_CHANGED",
    "DEFAULT_CHANGED",
    "SCHEMA_REMOVED",
    "TYPE_EXTENDED",
    "MAX_LENGTH_INCREASED",
    "MAX_LENGTH_REMOVED",
    "MIN_LENGTH_DECREASED",
    "MIN_LENGTH_REMOVED",
    "PATTERN_REMOVED",
    "MAXIMUM_INCREASED",
    "MAXIMUM_REMOVED",
    "MINIMUM_DECREASED",
    "MINIMUM_REMOVED",
    "EXCLUSIVE_MAXIMUM_INCREASED",
    "EXCLUSIVE_MAXIMUM_REMOVED",
    "EXCLUSIVE_MINIMUM_DECREASED",
    "EXCLUSIVE_MINIMUM_REMOVED",
    "MULTIPLE_OF_REDUCED",
    "MULTIPLE_OF_REMOVED",
    "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED",
    "REQUIRED_ATTRIBUTE_REMOVED",
    "DEPENDENCY_ARRAY_NARROWED",
    "DEPENDENCY_ARRAY_REMOVED",
    "DEPENDENCY_SCHEMA_REMOVED",
    "MAX_PROPERTIES_INCREASED",
    "MAX_PROPERTIES_REMOVED",
    "MIN_PROPERTIES_DECREASED",
    "MIN_PROPERTIES_REMOVED",
    "ADDITIONAL_PROPERTIES_ADDED",
    "ADDITIONAL_PROPERTIES_EXTENDED",
    "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
    "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL",
    "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
    "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
    "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    "MAX_ITEMS_INCREASED",
    "MAX_ITEMS_REMOVED",
    "MIN_ITEMS_DECREASED",
    "MIN_ITEMS_REMOVED",
    "UNIQUE_ITEMS_REMOVED",
    "ADDITIONAL_ITEMS_ADDED",
    "ADDITIONAL_ITEMS_EXTENDED",
    "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
    "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL",
    "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL",
    "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    "ENUM_ARRAY_EXTENDED",
    "COMBINED_TYPE_EXTENDED",
    "PRODUCT_TYPE_NARROWED",
    "SUM_TYPE_EXTENDED",
    "NOT_TYPE_NARROWED",
];

/// Whether a difference of this kind is compatible.
pub(super) fn is_compatible_kind(kind: &str) -> bool {
    COMPATIBLE.contains(&kind)
}

fn all_compatible(diffs: &[Difference]) -> bool {
    diffs.iter().all(|d| is_compatible_kind(d.kind))
}

/// One difference: its kind (Confluent's name) and JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Difference {
    pub(crate) kind: &'static str,
    pub(crate) path: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.path)
    }
}

/// Every difference between two root schemas.
pub(super) fn compare_roots(original: Node<'_>, update: Node<'_>) -> Vec<Difference> {
    let mut walker = Walker {
        path: Vec::new(),
        in_progress: Vec::new(),
        depth: 0,
        budget: MAX_COMPARISONS,
    };
    walker.compare(Some(original), Some(update))
}

/// A numeric keyword and its difference kinds: added, removed, increased,
/// decreased.
struct Bound {
    word: &'static str,
    kinds: [&'static str; 4],
}

macro_rules! bound {
    ($word:literal, $prefix:literal) => {
        Bound {
            word: $word,
            kinds: [
                concat!($prefix, "_ADDED"),
                concat!($prefix, "_REMOVED"),
                concat!($prefix, "_INCREASED"),
                concat!($prefix, "_DECREASED"),
            ],
        }
    };
}

const STRING_BOUNDS: &[Bound] = &[
    bound!("maxLength", "MAX_LENGTH"),
    bound!("minLength", "MIN_LENGTH"),
];
const NUMBER_BOUNDS: &[Bound] = &[
    bound!("maximum", "MAXIMUM"),
    bound!("minimum", "MINIMUM"),
    bound!("exclusiveMaximum", "EXCLUSIVE_MAXIMUM"),
    bound!("exclusiveMinimum", "EXCLUSIVE_MINIMUM"),
];
const OBJECT_BOUNDS: &[Bound] = &[
    bound!("maxProperties", "MAX_PROPERTIES"),
    bound!("minProperties", "MIN_PROPERTIES"),
];
const ARRAY_BOUNDS: &[Bound] = &[
    bound!("maxItems", "MAX_ITEMS"),
    bound!("minItems", "MIN_ITEMS"),
    bound!("maxContains", "MAX_CONTAINS"),
    bound!("minContains", "MIN_CONTAINS"),
];

struct Walker<'a> {
    path: Vec<String>,
    /// Pairs being compared further up, to stop at recursion.
    in_progress: Vec<(Node<'a>, Node<'a>)>,
    depth: usize,
    /// Comparisons left.
    budget: usize,
}

impl<'a> Walker<'a> {
    fn at(&self, kind: &'static str) -> Difference {
        Difference {
            kind,
            path: format!("#/{}", self.path.join("/")),
        }
    }

    fn at_word(&mut self, word: &str, kind: &'static str) -> Difference {
        self.within(word, |w| w.at(kind))
    }

    fn within<R>(&mut self, segment: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push(segment.to_string());
        let out = f(self);
        self.path.pop();
        out
    }

    fn compare(&mut self, original: Option<Node<'a>>, update: Option<Node<'a>>) -> Vec<Difference> {
        let (o, u) = match (original, update) {
            (None, None) => return Vec::new(),
            (None, Some(_)) => return vec![self.at("SCHEMA_ADDED")],
            (Some(_), None) => return vec![self.at("SCHEMA_REMOVED")],
            (Some(o), Some(u)) => (o, u),
        };
        if self.budget == 0 || self.depth >= MAX_COMPARE_DEPTH {
            self.budget = 0;
            return vec![self.at(TOO_COMPLEX)];
        }
        self.budget -= 1;
        self.depth += 1;
        let out = match (o.resolved(), u.resolved()) {
            (Some(o), Some(u)) => self.compare_resolved(o, u),
            _ => vec![self.at(UNRESOLVED)],
        };
        self.depth -= 1;
        out
    }

    fn compare_resolved(&mut self, o: Node<'a>, u: Node<'a>) -> Vec<Difference> {
        let (so, su) = (o.shape(), u.shape());
        if let Some(found) = self.one_side_combined(o, &so, u, &su) {
            return found;
        }
        if !so.same_class(&su) {
            if matches!(so, Shape::False) || matches!(su, Shape::Empty) {
                return Vec::new();
            }
            return vec![self.at("TYPE_CHANGED")];
        }
        if self
            .in_progress
            .iter()
            .any(|(a, b)| a.same(&o) && b.same(&u))
        {
            return Vec::new();
        }
        self.in_progress.push((o, u));
        let mut out = self.metadata(o, u);
        out.extend(self.by_shape(o, u, so, su));
        self.in_progress.pop();
        out
    }

    /// A union on one side only: the other side may match one branch.
    fn one_side_combined(
        &mut self,
        o: Node<'a>,
        so: &Shape<'a>,
        u: Node<'a>,
        su: &Shape<'a>,
    ) -> Option<Vec<Difference>> {
        match (so, su) {
            (Shape::Combined(..), Shape::Combined(..)) => None,
            (_, Shape::Combined(crit, subs)) => {
                if let [only] = subs.as_slice() {
                    return self.compatible_or_none(o, *only, None);
                }
                if *crit == Crit::All {
                    return None;
                }
                subs.iter()
                    .find_map(|s| self.compatible_or_none(o, *s, Some("SUM_TYPE_EXTENDED")))
            }
            (Shape::Combined(crit, subs), _) => {
                if let [only] = subs.as_slice() {
                    if let Some(found) = self.compatible_or_none(*only, u, None) {
                        return Some(found);
                    }
                }
                if *crit != Crit::All {
                    return None;
                }
                subs.iter()
                    .find_map(|s| self.compatible_or_none(*s, u, Some("PRODUCT_TYPE_NARROWED")))
            }
            _ => None,
        }
    }

    /// The differences of `o` against `u` (plus `extra`) if compatible.
    fn compatible_or_none(
        &mut self,
        o: Node<'a>,
        u: Node<'a>,
        extra: Option<&'static str>,
    ) -> Option<Vec<Difference>> {
        let mut found = self.compare(Some(o), Some(u));
        if !all_compatible(&found) {
            return None;
        }
        found.extend(extra.map(|k| self.at(k)));
        Some(found)
    }

    fn metadata(&self, o: Node<'a>, u: Node<'a>) -> Vec<Difference> {
        let id = |n: &Node<'a>| n.meta("$id").or_else(|| n.meta("id"));
        let mut out = Vec::new();
        if id(&o) != id(&u) {
            out.push(self.at("ID_CHANGED"));
        }
        for (word, kind) in [
            ("title", "TITLE_CHANGED"),
            ("description", "DESCRIPTION_CHANGED"),
            ("default", "DEFAULT_CHANGED"),
        ] {
            if o.meta(word) != u.meta(word) {
                out.push(self.at(kind));
            }
        }
        out
    }

    fn by_shape(
        &mut self,
        o: Node<'a>,
        u: Node<'a>,
        so: Shape<'a>,
        su: Shape<'a>,
    ) -> Vec<Difference> {
        match (so, su) {
            (Shape::String(a), Shape::String(b)) => self.strings(a, b),
            (Shape::Number(a, ai), Shape::Number(b, bi)) => self.numbers(a, ai, b, bi),
            (Shape::Const(a), Shape::Const(b)) if a != b => {
                vec![self.at_word("const", "ENUM_ARRAY_CHANGED")]
            }
            (Shape::Enum(a), Shape::Enum(b)) => self.enums(a, b),
            (Shape::Combined(ca, sa), Shape::Combined(cb, sb)) => self.combined(ca, sa, cb, sb),
            (Shape::Not(a), Shape::Not(b)) => self.not(a, b),
            (Shape::Object(a), Shape::Object(b)) => self.objects(o, u, a, b),
            (Shape::Array(a), Shape::Array(b)) => self.arrays(o, u, a, b),
            _ => Vec::new(),
        }
    }

    fn bounds(
        &mut self,
        table: &[Bound],
        a: &Map<String, Value>,
        b: &Map<String, Value>,
    ) -> Vec<Difference> {
        let mut out = Vec::new();
        for bound in table {
            let x = a.get(bound.word).and_then(Value::as_f64);
            let y = b.get(bound.word).and_then(Value::as_f64);
            let [added, removed, increased, decreased] = bound.kinds;
            let kind = match (x, y) {
                (None, Some(_)) => added,
                (Some(_), None) => removed,
                (Some(x), Some(y)) if x < y => increased,
                (Some(x), Some(y)) if x > y => decreased,
                _ => continue,
            };
            out.push(self.at_word(bound.word, kind));
        }
        out
    }

    fn strings(&mut self, a: &Map<String, Value>, b: &Map<String, Value>) -> Vec<Difference> {
        let mut out = self.bounds(STRING_BOUNDS, a, b);
        let pattern =
            |m: &Map<String, Value>| m.get("pattern").and_then(Value::as_str).map(str::to_owned);
        let kind = match (pattern(a), pattern(b)) {
            (None, Some(_)) => Some("PATTERN_ADDED"),
            (Some(_), None) => Some("PATTERN_REMOVED"),
            (Some(x), Some(y)) if x != y => Some("PATTERN_CHANGED"),
            _ => None,
        };
        out.extend(kind.map(|k| self.at_word("pattern", k)));
        out
    }

    fn numbers(
        &mut self,
        a: &Map<String, Value>,
        a_int: bool,
        b: &Map<String, Value>,
        b_int: bool,
    ) -> Vec<Difference> {
        let mut out = self.bounds(NUMBER_BOUNDS, a, b);
        let multiple = |m: &Map<String, Value>| m.get("multipleOf").and_then(Value::as_f64);
        let divides = |big: f64, small: f64| small != 0.0 && big % small == 0.0;
        let kind = match (multiple(a), multiple(b)) {
            (None, Some(_)) => Some("MULTIPLE_OF_ADDED"),
            (Some(_), None) => Some("MULTIPLE_OF_REMOVED"),
            (Some(x), Some(y)) if x == y => None,
            (Some(x), Some(y)) if divides(y, x) => Some("MULTIPLE_OF_EXPANDED"),
            (Some(x), Some(y)) if divides(x, y) => Some("MULTIPLE_OF_REDUCED"),
            (Some(_), Some(_)) => Some("MULTIPLE_OF_CHANGED"),
            (None, None) => None,
        };
        out.extend(kind.map(|k| self.at_word("multipleOf", k)));
        if a_int != b_int {
            out.push(self.at(if a_int {
                "TYPE_EXTENDED"
            } else {
                "TYPE_NARROWED"
            }));
        }
        out
    }

    fn enums(&mut self, a: &[Value], b: &[Value]) -> Vec<Difference> {
        let within = |x: &[Value], y: &[Value]| x.iter().all(|v| y.contains(v));
        let kind = match (within(a, b), within(b, a)) {
            (true, true) => return Vec::new(),
            (true, false) => "ENUM_ARRAY_EXTENDED",
            (false, true) => "ENUM_ARRAY_NARROWED",
            (false, false) => "ENUM_ARRAY_CHANGED",
        };
        vec![self.at_word("enum", kind)]
    }

    fn not(&mut self, a: Node<'a>, b: Node<'a>) -> Vec<Difference> {
        self.within("not", |w| {
            let reversed = w.compare(Some(b), Some(a));
            let kind = if all_compatible(&reversed) {
                "NOT_TYPE_NARROWED"
            } else {
                "NOT_TYPE_EXTENDED"
            };
            vec![w.at(kind)]
        })
    }
}
