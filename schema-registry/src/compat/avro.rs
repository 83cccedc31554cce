//! Avro schema compatibility, by the rules of Apache Avro's Java
//! `SchemaCompatibility` (which Confluent's registry uses), over our own
//! parse of the schema JSON.
//!
//! A reader can read data written with a writer schema when (Java's
//! `ReaderWriterCompatibilityChecker`):
//! - both are the same primitive, or the writer's is promotable: int→long,
//!   int/long→float, int/long/float→double, string↔bytes;
//! - arrays and maps: their items/values are compatible;
//! - named types (record, enum, fixed) match by unqualified name, or the
//!   reader's aliases name the writer's full name;
//! - fixed: same size; enum: every writer symbol is a reader symbol, unless
//!   the reader has a default;
//! - record: each reader field is found in the writer (by name, or by the
//!   reader field's aliases) with a compatible type, or has a default;
//! - a writer union: every branch is readable; a reader union: some branch
//!   reads the writer.
//!
//! Logical types are ignored (so decimal precision changes pass, as in Java).
//! Each (reader, writer) pair is decided once (memoized, failures too, as
//! in Java), a pair met again while in progress counting as compatible
//! (recursion); the check's depth is bounded like the parse's.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// A node of a parsed schema; named types are referenced by index.
#[derive(Debug, Clone)]
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(usize),
    Map(usize),
    Union(Vec<usize>),
    Record {
        name: Name,
        fields: Vec<Field>,
    },
    Enum {
        name: Name,
        symbols: Vec<String>,
        default: Option<String>,
    },
    Fixed {
        name: Name,
        size: u64,
    },
    /// A named type used before its definition finished (recursion).
    Pending,
}

#[derive(Debug, Clone)]
struct Name {
    /// Unqualified name.
    name: String,
    fullname: String,
    /// Full names.
    aliases: Vec<String>,
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    aliases: Vec<String>,
    node: usize,
    has_default: bool,
}

/// A parsed schema: an arena of nodes and the root's index.
#[derive(Debug, Clone)]
pub struct Parsed {
    nodes: Vec<Node>,
    root: usize,
}

/// Most nodes one schema may have (bounds memory on hostile input).
const MAX_NODES: usize = 100_000;
/// Deepest nesting accepted (bounds recursion on hostile input).
const MAX_DEPTH: usize = 256;

struct Parser {
    nodes: Vec<Node>,
    named: HashMap<String, usize>,
}

fn fullname(name: &str, namespace: Option<&str>) -> String {
    match (name.contains('.'), namespace) {
        (true, _) | (false, None) => name.to_string(),
        (false, Some("")) => name.to_string(),
        (false, Some(ns)) => format!("{ns}.{name}"),
    }
}

fn short(full: &str) -> &str {
    full.rsplit('.').next().unwrap_or(full)
}

impl Parser {
    fn push(&mut self, n: Node) -> Result<usize, String> {
        if self.nodes.len() >= MAX_NODES {
            return Err("schema too large".into());
        }
        self.nodes.push(n);
        Ok(self.nodes.len() - 1)
    }

    fn primitive(name: &str) -> Option<Node> {
        Some(match name {
            "null" => Node::Null,
            "boolean" => Node::Boolean,
            "int" => Node::Int,
            "long" => Node::Long,
            "float" => Node::Float,
            "double" => Node::Double,
            "bytes" => Node::Bytes,
            "string" => Node::String,
            _ => return None,
        })
    }

    fn name_of(
        v: &serde_json::Map<String, Value>,
        ns: Option<&str>,
    ) -> Result<(Name, Option<String>), String> {
        let n = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or("named type without a name")?;
        let own_ns = v.get("namespace").and_then(Value::as_str).or(ns);
        let full = fullname(n, own_ns);
        let space = full.rsplit_once('.').map(|(s, _)| s.to_string());
        let aliases = v
            .get("aliases")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|x| fullname(x, space.as_deref()))
                    .collect()
            })
            .unwrap_or_default();
        Ok((
            Name {
                name: short(&full).to_string(),
                fullname: full.clone(),
                aliases,
            },
            space,
        ))
    }

    fn parse(&mut self, v: &Value, ns: Option<&str>, depth: usize) -> Result<usize, String> {
        if depth > MAX_DEPTH {
            return Err("schema nested too deeply".into());
        }
        match v {
            Value::String(s) => {
                if let Some(p) = Self::primitive(s) {
                    return self.push(p);
                }
                let full = fullname(s, ns);
                self.named
                    .get(&full)
                    .or_else(|| self.named.get(s.as_str()))
                    .copied()
                    .ok_or_else(|| format!("unknown type {s}"))
            }
            Value::Array(branches) => {
                let mut ids = Vec::with_capacity(branches.len().min(64));
                for b in branches {
                    ids.push(self.parse(b, ns, depth + 1)?);
                }
                self.push(Node::Union(ids))
            }
            Value::Object(o) => {
                let t = o.get("type").ok_or("a schema object needs a type")?;
                let Some(t) = t.as_str() else {
                    // {"type": {...}} or {"type": [...]}: the inner schema.
                    return self.parse(t, ns, depth + 1);
                };
                match t {
                    "array" => {
                        let items = o.get("items").ok_or("array without items")?;
                        let i = self.parse(items, ns, depth + 1)?;
                        self.push(Node::Array(i))
                    }
                    "map" => {
                        let values = o.get("values").ok_or("map without values")?;
                        let i = self.parse(values, ns, depth + 1)?;
                        self.push(Node::Map(i))
                    }
                    "record" | "error" => {
                        let (name, space) = Self::name_of(o, ns)?;
                        let idx = self.push(Node::Pending)?;
                        self.named.insert(name.fullname.clone(), idx);
                        let mut fields = Vec::new();
                        let mut field_names = HashSet::new();
                        for f in o
                            .get("fields")
                            .and_then(Value::as_array)
                            .ok_or("record without fields")?
                        {
                            let fo = f.as_object().ok_or("a field must be an object")?;
                            let fname = fo
                                .get("name")
                                .and_then(Value::as_str)
                                .ok_or("field without a name")?;
                            let ft = fo.get("type").ok_or("field without a type")?;
                            let node = self.parse(ft, space.as_deref(), depth + 1)?;
                            if !field_names.insert(fname) {
                                return Err(format!("duplicate field {fname}"));
                            }
                            fields.push(Field {
                                name: fname.to_string(),
                                aliases: fo
                                    .get("aliases")
                                    .and_then(Value::as_array)
                                    .map(|a| {
                                        a.iter()
                                            .filter_map(Value::as_str)
                                            .map(str::to_string)
                                            .collect()
                                    })
                                    .unwrap_or_default(),
                                node,
                                has_default: fo.contains_key("default"),
                            });
                        }
                        if let Some(slot) = self.nodes.get_mut(idx) {
                            *slot = Node::Record { name, fields };
                        }
                        Ok(idx)
                    }
                    "enum" => {
                        let (name, _) = Self::name_of(o, ns)?;
                        let symbols = o
                            .get("symbols")
                            .and_then(Value::as_array)
                            .ok_or("enum without symbols")?
                            .iter()
                            .map(|s| {
                                s.as_str()
                                    .map(str::to_string)
                                    .ok_or("enum symbols are strings")
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        let mut distinct = HashSet::with_capacity(symbols.len());
                        if let Some(dup) = symbols.iter().find(|x| !distinct.insert(x.as_str())) {
                            return Err(format!("duplicate enum symbol {dup}"));
                        }
                        // As Java: a non-string default is ignored, a string
                        // one must be a symbol.
                        let default = o.get("default").and_then(Value::as_str).map(str::to_string);
                        if let Some(d) = &default {
                            if !symbols.contains(d) {
                                return Err(format!("enum default {d} is not one of its symbols"));
                            }
                        }
                        let full = name.fullname.clone();
                        let idx = self.push(Node::Enum {
                            name,
                            symbols,
                            default,
                        })?;
                        self.named.insert(full, idx);
                        Ok(idx)
                    }
                    "fixed" => {
                        let (name, _) = Self::name_of(o, ns)?;
                        let size = o
                            .get("size")
                            .and_then(Value::as_u64)
                            .ok_or("fixed without a size")?;
                        let full = name.fullname.clone();
                        let idx = self.push(Node::Fixed { name, size })?;
                        self.named.insert(full, idx);
                        Ok(idx)
                    }
                    other => {
                        // A primitive with attributes (logical types too).
                        if let Some(p) = Self::primitive(other) {
                            return self.push(p);
                        }
                        let full = fullname(other, ns);
                        self.named
                            .get(&full)
                            .or_else(|| self.named.get(other))
                            .copied()
                            .ok_or_else(|| format!("unknown type {other}"))
                    }
                }
            }
            _ => Err("a schema is a string, an array or an object".into()),
        }
    }
}

/// Parses an Avro schema's JSON text, with `named` schemas (from
/// references) defined first.
pub fn parse(text: &str, references: &[&str]) -> Result<Parsed, String> {
    let mut p = Parser {
        nodes: Vec::new(),
        named: HashMap::new(),
    };
    for r in references {
        let v: Value = serde_json::from_str(r).map_err(|e| e.to_string())?;
        p.parse(&v, None, 0)?;
    }
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let root = p.parse(&v, None, 0)?;
    Ok(Parsed {
        nodes: p.nodes,
        root,
    })
}

struct Checker<'a> {
    reader: &'a Parsed,
    writer: &'a Parsed,
    /// Each (reader, writer) pair's verdict, as Java's memo: true while in
    /// progress (recursion is assumed compatible until proven otherwise).
    memo: HashMap<(usize, usize), bool>,
    depth: usize,
    problems: Vec<String>,
}

/// Deepest the check descends (bounds the stack: names from references can
/// nest a schema deeper than one text's `MAX_DEPTH`).
const MAX_CHECK_DEPTH: usize = MAX_DEPTH;

fn names_match(r: &Name, w: &Name) -> bool {
    r.name == w.name || r.aliases.contains(&w.fullname)
}

impl Checker<'_> {
    fn node(p: &Parsed, i: usize) -> &Node {
        p.nodes.get(i).unwrap_or(&Node::Null)
    }

    fn type_name(n: &Node) -> &'static str {
        match n {
            Node::Null => "NULL",
            Node::Boolean => "BOOLEAN",
            Node::Int => "INT",
            Node::Long => "LONG",
            Node::Float => "FLOAT",
            Node::Double => "DOUBLE",
            Node::Bytes => "BYTES",
            Node::String => "STRING",
            Node::Array(_) => "ARRAY",
            Node::Map(_) => "MAP",
            Node::Union(_) => "UNION",
            Node::Record { .. } => "RECORD",
            Node::Enum { .. } => "ENUM",
            Node::Fixed { .. } => "FIXED",
            Node::Pending => "UNKNOWN",
        }
    }

    /// Whether the reader node reads the writer node; records why not.
    fn check(&mut self, r: usize, w: usize, path: &str) -> bool {
        if let Some(&ok) = self.memo.get(&(r, w)) {
            if !ok {
                // Decided before, perhaps inside a union branch search
                // whose reports were dropped: never fail silently.
                self.problems
                    .push(format!("incompatible (as found before) at {path}"));
            }
            return ok;
        }
        if self.depth >= MAX_CHECK_DEPTH {
            return self.fail(path, "schemas nested too deeply to check".into());
        }
        self.memo.insert((r, w), true);
        self.depth += 1;
        let ok = self.check_inner(r, w, path);
        self.depth -= 1;
        self.memo.insert((r, w), ok);
        ok
    }

    fn name_check(&mut self, r: &Name, w: &Name, path: &str) -> bool {
        if names_match(r, w) {
            true
        } else {
            self.fail(
                &format!("{path}/name"),
                format!("NAME_MISMATCH: expected {}", w.fullname),
            )
        }
    }

    fn fail(&mut self, path: &str, why: String) -> bool {
        self.problems.push(format!("{why} at {path}"));
        false
    }

    fn check_inner(&mut self, r: usize, w: usize, path: &str) -> bool {
        let (rn, wn) = (
            Self::node(self.reader, r).clone(),
            Self::node(self.writer, w).clone(),
        );
        match (&rn, &wn) {
            (_, Node::Union(ws)) if !matches!(rn, Node::Union(_)) => {
                let mut ok = true;
                for (i, b) in ws.iter().enumerate() {
                    ok &= self.check(r, *b, &format!("{path}/{i}"));
                }
                ok
            }
            (Node::Union(rs), Node::Union(ws)) => {
                let mut ok = true;
                for (i, b) in ws.iter().enumerate() {
                    let readable = rs.iter().any(|x| self.quiet(*x, *b));
                    if !readable {
                        ok = self.fail(
                            &format!("{path}/{i}"),
                            "READER_UNION_MISSING_WRITER_BRANCH".into(),
                        );
                    }
                }
                ok
            }
            (Node::Union(rs), _) => {
                if rs.iter().any(|x| self.quiet(*x, w)) {
                    true
                } else {
                    self.fail(
                        path,
                        format!("MISSING_UNION_BRANCH: {}", Self::type_name(&wn)),
                    )
                }
            }
            (Node::Null, Node::Null)
            | (Node::Boolean, Node::Boolean)
            | (Node::Int, Node::Int)
            | (Node::Long, Node::Long | Node::Int)
            | (Node::Float, Node::Float | Node::Int | Node::Long)
            | (Node::Double, Node::Double | Node::Int | Node::Long | Node::Float)
            | (Node::Bytes, Node::Bytes | Node::String)
            | (Node::String, Node::String | Node::Bytes) => true,
            (Node::Array(ri), Node::Array(wi)) => self.check(*ri, *wi, &format!("{path}/items")),
            (Node::Map(ri), Node::Map(wi)) => self.check(*ri, *wi, &format!("{path}/values")),
            (Node::Fixed { name: a, size: x }, Node::Fixed { name: b, size: y }) => {
                // As Java, the name and the size are both checked.
                let mut ok = self.name_check(a, b, path);
                if x != y {
                    ok = self.fail(
                        &format!("{path}/size"),
                        format!("FIXED_SIZE_MISMATCH: expected {y}, found {x}"),
                    );
                }
                ok
            }
            (
                Node::Enum {
                    name: a,
                    symbols: rs,
                    default,
                },
                Node::Enum {
                    name: b,
                    symbols: ws,
                    ..
                },
            ) => {
                let mut ok = self.name_check(a, b, path);
                let readable: HashSet<&str> = rs.iter().map(String::as_str).collect();
                let mut missing: Vec<&str> = ws
                    .iter()
                    .filter(|s| !readable.contains(s.as_str()))
                    .map(String::as_str)
                    .collect();
                missing.sort_unstable();
                missing.dedup();
                // A reader default covers unknown symbols only if it is
                // one of the reader's symbols (Java's condition).
                let covered = default
                    .as_ref()
                    .is_some_and(|d| readable.contains(d.as_str()));
                if !missing.is_empty() && !covered {
                    ok = self.fail(
                        &format!("{path}/symbols"),
                        format!("MISSING_ENUM_SYMBOLS: [{}]", missing.join(", ")),
                    );
                }
                ok
            }
            (
                Node::Record {
                    name: a,
                    fields: rf,
                },
                Node::Record {
                    name: b,
                    fields: wf,
                },
            ) => {
                let mut ok = self.name_check(a, b, path);
                let by_name: HashMap<&str, &Field> =
                    wf.iter().rev().map(|x| (x.name.as_str(), x)).collect();
                for (i, f) in rf.iter().enumerate() {
                    // Java's lookupWriterField: the field's own name, then
                    // each alias; more than one match is an error there.
                    let mut found = std::iter::once(f.name.as_str())
                        .chain(f.aliases.iter().map(String::as_str))
                        .filter_map(|n| by_name.get(n));
                    let (first, second) = (found.next(), found.next());
                    let fpath = format!("{path}/fields/{i}");
                    match (first, second) {
                        (Some(_), Some(_)) => {
                            ok = self.fail(
                                &fpath,
                                format!("reader field {} matches several writer fields", f.name),
                            );
                        }
                        (Some(x), None) => {
                            ok &= self.check(f.node, x.node, &format!("{fpath}/type"));
                        }
                        (None, _) if f.has_default => {}
                        (None, _) => {
                            // Java checks an enum with a default against the
                            // writer record itself: a type mismatch.
                            let why = match Self::node(self.reader, f.node) {
                                Node::Enum {
                                    default: Some(_), ..
                                } => "TYPE_MISMATCH: reader type ENUM not compatible with writer type RECORD".to_string(),
                                _ => format!("READER_FIELD_MISSING_DEFAULT_VALUE: {}", f.name),
                            };
                            ok = self.fail(&fpath, why);
                        }
                    }
                }
                ok
            }
            _ => self.fail(
                path,
                format!(
                    "TYPE_MISMATCH: reader type {} not compatible with writer type {}",
                    Self::type_name(&rn),
                    Self::type_name(&wn)
                ),
            ),
        }
    }

    /// A check whose problems are not reported (union branch search).
    fn quiet(&mut self, r: usize, w: usize) -> bool {
        let before = self.problems.len();
        let ok = self.check(r, w, "");
        self.problems.truncate(before);
        ok
    }
}

/// Why data written with `writer` cannot be read with `reader` (empty:
/// it can).
pub fn incompatibilities(reader: &Parsed, writer: &Parsed) -> Vec<String> {
    let mut c = Checker {
        reader,
        writer,
        memo: HashMap::new(),
        depth: 0,
        problems: Vec::new(),
    };
    c.check(reader.root, writer.root, "");
    c.problems
}
