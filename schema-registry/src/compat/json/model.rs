//! How a JSON value is seen as a schema, the way Confluent's loader (everit)
//! builds its schema classes, because the diff rules branch on those classes.
//!
//! A schema object with several kinds of keywords (say `type` and `enum`)
//! is a synthetic `allOf` of one part per kind; `"type": [..]` is an `anyOf`
//! of one part per type; with no `type`, keywords of a type (`properties`,
//! `items`, `maxLength`, `minimum`, ...) imply that type. A part is a
//! [`Node`] with a [`Facet`] naming which keywords of its object it stands
//! for. `$ref`s are followed through the document or a named reference.

use serde_json::{Map, Value};

use super::Parsed;

/// Most `$ref` hops followed from one schema before giving up (a cycle of
/// bare references describes no schema).
pub(super) const MAX_REF_HOPS: usize = 16;

/// A JSON type a schema part constrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Object,
    Array,
    String,
    Number,
    Integer,
    Boolean,
    Null,
}

impl Ty {
    fn named(name: &str) -> Option<Ty> {
        Some(match name {
            "object" => Ty::Object,
            "array" => Ty::Array,
            "string" => Ty::String,
            "number" => Ty::Number,
            "integer" => Ty::Integer,
            "boolean" => Ty::Boolean,
            "null" => Ty::Null,
            _ => return None,
        })
    }
}

/// Which keywords of its object a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Facet {
    /// The whole value (the only facet that carries title, default, ...).
    Whole,
    /// One entry of `type` (from a string, or a list's member).
    Type(Ty),
    /// A type implied by its keywords, with no `type` keyword.
    Sniffed(Ty),
    /// `type` given as a list.
    TypeUnion,
    Enum,
    Const,
    Not,
    AllOf,
    AnyOf,
    OneOf,
    /// `if`/`then`/`else`, which the diff rules do not look into.
    Conditional,
}

/// `allOf`, `anyOf` or `oneOf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Crit {
    All,
    Any,
    One,
}

impl Crit {
    pub(super) fn keyword(self) -> &'static str {
        match self {
            Crit::All => "allOf",
            Crit::Any => "anyOf",
            Crit::One => "oneOf",
        }
    }
}

/// The document a node lives in, for resolving `$ref`s.
#[derive(Debug, Clone, Copy)]
pub(super) struct Doc<'a> {
    pub(super) parsed: &'a Parsed,
    pub(super) root: &'a Value,
}

/// A schema (or a part of one) inside a document.
#[derive(Debug, Clone, Copy)]
pub(super) struct Node<'a> {
    pub(super) doc: Doc<'a>,
    pub(super) value: &'a Value,
    pub(super) facet: Facet,
}

/// What a node is, as everit's schema class plus what the rules read.
#[derive(Debug)]
pub(super) enum Shape<'a> {
    /// `{}`, `true`, or an object with no validating keywords.
    Empty,
    False,
    Object(&'a Map<String, Value>),
    Array(&'a Map<String, Value>),
    String(&'a Map<String, Value>),
    /// A number; `true` when it must be an integer.
    Number(&'a Map<String, Value>, bool),
    Boolean,
    Null,
    Enum(&'a [Value]),
    Const(&'a Value),
    Not(Node<'a>),
    Combined(Crit, Vec<Node<'a>>),
    Conditional,
}

impl Shape<'_> {
    /// Same everit class (numbers and integers are one class).
    pub(super) fn same_class(&self, other: &Shape<'_>) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

const OBJECT_WORDS: &[&str] = &[
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "dependencies",
    "minProperties",
    "maxProperties",
    "propertyNames",
];
const ARRAY_WORDS: &[&str] = &[
    "items",
    "additionalItems",
    "minItems",
    "maxItems",
    "uniqueItems",
    "contains",
];
const NUMBER_WORDS: &[&str] = &[
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
];
const STRING_WORDS: &[&str] = &["minLength", "maxLength", "pattern", "format"];

impl<'a> Node<'a> {
    pub(super) fn whole(doc: Doc<'a>, value: &'a Value) -> Node<'a> {
        Node {
            doc,
            value,
            facet: Facet::Whole,
        }
    }

    /// A schema nested in this node's document.
    pub(super) fn child(&self, value: &'a Value) -> Node<'a> {
        Node::whole(self.doc, value)
    }

    fn with_facet(&self, facet: Facet) -> Node<'a> {
        Node { facet, ..*self }
    }

    /// The object's keywords, if the value is an object.
    pub(super) fn map(&self) -> Option<&'a Map<String, Value>> {
        self.value.as_object()
    }

    /// The metadata keywords; only whole schemas carry them.
    pub(super) fn meta(&self, key: &str) -> Option<&'a Value> {
        match self.facet {
            Facet::Whole => self.map().and_then(|m| m.get(key)),
            _ => None,
        }
    }

    /// Identity of the node, for spotting a recursive comparison.
    pub(super) fn same(&self, other: &Node<'_>) -> bool {
        std::ptr::eq(self.value, other.value) && self.facet == other.facet
    }

    /// A `$ref` followed to its target (repeatedly); `None` when it cannot
    /// be resolved.
    pub(super) fn resolved(self) -> Option<Node<'a>> {
        let mut node = self;
        for _ in 0..MAX_REF_HOPS {
            match node.ref_target() {
                None => return Some(node),
                Some(target) => node = target?,
            }
        }
        None
    }

    /// `None` when not a `$ref`; `Some(None)` when it does not resolve.
    fn ref_target(&self) -> Option<Option<Node<'a>>> {
        if self.facet != Facet::Whole {
            return None;
        }
        let reference = self.map()?.get("$ref")?;
        Some(reference.as_str().and_then(|r| self.doc.resolve(r)))
    }

    /// Is this (without following `$ref`) everit's empty schema?
    pub(super) fn is_empty_schema(&self) -> bool {
        match self.value {
            Value::Bool(b) => *b,
            Value::Object(m) => !m.contains_key("$ref") && facets(m).is_empty(),
            _ => false,
        }
    }

    /// Is this literally the `false` schema?
    pub(super) fn is_false_schema(&self) -> bool {
        matches!(self.value, Value::Bool(false))
    }

    /// The node's class and parts; call on a resolved node.
    pub(super) fn shape(&self) -> Shape<'a> {
        let map = match self.value {
            Value::Object(m) => m,
            Value::Bool(false) => return Shape::False,
            _ => return Shape::Empty,
        };
        match self.facet {
            Facet::Whole => {
                let found = facets(map);
                match found.as_slice() {
                    [] => Shape::Empty,
                    [one] => self.with_facet(*one).shape(),
                    _ => Shape::Combined(
                        Crit::All,
                        found.iter().map(|f| self.with_facet(*f)).collect(),
                    ),
                }
            }
            Facet::Type(ty) | Facet::Sniffed(ty) => typed(map, ty),
            Facet::TypeUnion => Shape::Combined(Crit::Any, self.type_parts(map)),
            Facet::Enum => enum_shape(map),
            Facet::Const => map.get("const").map_or(Shape::Empty, Shape::Const),
            Facet::Not => map
                .get("not")
                .map_or(Shape::Empty, |n| Shape::Not(self.child(n))),
            Facet::AllOf => self.combined(map, Crit::All),
            Facet::AnyOf => self.combined(map, Crit::Any),
            Facet::OneOf => self.combined(map, Crit::One),
            Facet::Conditional => Shape::Conditional,
        }
    }

    fn type_parts(&self, map: &'a Map<String, Value>) -> Vec<Node<'a>> {
        let names = map.get("type").and_then(Value::as_array);
        names
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().and_then(Ty::named))
            .map(|ty| self.with_facet(Facet::Type(ty)))
            .collect()
    }

    fn combined(&self, map: &'a Map<String, Value>, crit: Crit) -> Shape<'a> {
        let subs = map.get(crit.keyword()).and_then(Value::as_array);
        Shape::Combined(
            crit,
            subs.into_iter().flatten().map(|s| self.child(s)).collect(),
        )
    }
}

fn typed(map: &Map<String, Value>, ty: Ty) -> Shape<'_> {
    match ty {
        Ty::Object => Shape::Object(map),
        Ty::Array => Shape::Array(map),
        Ty::String => Shape::String(map),
        Ty::Number => Shape::Number(map, false),
        Ty::Integer => Shape::Number(map, true),
        Ty::Boolean => Shape::Boolean,
        Ty::Null => Shape::Null,
    }
}

fn enum_shape(map: &Map<String, Value>) -> Shape<'_> {
    match map.get("enum") {
        Some(Value::Array(values)) => Shape::Enum(values),
        _ => Shape::Empty,
    }
}

/// The parts an object schema is made of, in everit's order.
pub(super) fn facets(map: &Map<String, Value>) -> Vec<Facet> {
    let mut found = Vec::new();
    for (word, facet) in [
        ("allOf", Facet::AllOf),
        ("anyOf", Facet::AnyOf),
        ("oneOf", Facet::OneOf),
    ] {
        if matches!(map.get(word), Some(Value::Array(_))) {
            found.push(facet);
        }
    }
    match map.get("type") {
        Some(Value::String(name)) => found.extend(Ty::named(name).map(Facet::Type)),
        Some(Value::Array(_)) => found.push(Facet::TypeUnion),
        _ => found.extend(sniffed(map)),
    }
    if map
        .get("not")
        .is_some_and(|n| n.is_object() || n.is_boolean())
    {
        found.push(Facet::Not);
    }
    if matches!(map.get("enum"), Some(Value::Array(_))) {
        found.push(Facet::Enum);
    }
    if map.contains_key("const") {
        found.push(Facet::Const);
    }
    if ["if", "then", "else"].iter().any(|w| map.contains_key(*w)) {
        found.push(Facet::Conditional);
    }
    found
}

/// Types implied by keywords when there is no `type`.
fn sniffed(map: &Map<String, Value>) -> Vec<Facet> {
    [
        (OBJECT_WORDS, Ty::Object),
        (ARRAY_WORDS, Ty::Array),
        (NUMBER_WORDS, Ty::Number),
        (STRING_WORDS, Ty::String),
    ]
    .into_iter()
    .filter(|(words, _)| words.iter().any(|w| map.contains_key(*w)))
    .map(|(_, ty)| Facet::Sniffed(ty))
    .collect()
}

impl<'a> Doc<'a> {
    /// Resolves a `$ref`: `#...` in this document, `name` or `name#...`
    /// in the named reference (or this document, if its `$id` is `name`).
    pub(super) fn resolve(&self, reference: &str) -> Option<Node<'a>> {
        let (base, fragment) = match reference.split_once('#') {
            Some((base, fragment)) => (base, fragment),
            None => (reference, ""),
        };
        let root = if base.is_empty() || self.is_named(base) {
            self.root
        } else {
            self.parsed.reference(base)?
        };
        let target = if fragment.is_empty() {
            root
        } else {
            root.pointer(fragment)?
        };
        let doc = Doc {
            parsed: self.parsed,
            root,
        };
        Some(Node::whole(doc, target))
    }

    fn is_named(&self, base: &str) -> bool {
        ["$id", "id"]
            .iter()
            .any(|k| self.root.get(*k).and_then(Value::as_str) == Some(base))
    }
}
