//! Avro compatibility against corpora transcribed (into our own JSON) from
//! Apache Avro's Java `TestSchemaCompatibility*` suites and Confluent's
//! `AvroCompatibilityTest`: reader/writer pairs with Java's verdict (and,
//! where Java asserts it, how many incompatibilities it reports), and
//! level cases run through `Rules::check`.
//!
//! Left out:
//! - Avro's decimal precision/scale mismatch suites: logical types are
//!   ignored here on purpose (see `avro.rs`).
//! - Avro's decoding round-trips (`DECODING_COMPATIBILITY_TEST_CASES`):
//!   they test the resolving decoder on one datum, not a verdict.
//! - Messages and locations of Java's incompatibilities: ours are worded
//!   differently; only the verdict and the count are compared.
//! - Java's anonymous records (`Schema.createRecord(fields)`) are given the
//!   same name on both sides, which leaves the verdict unchanged.

use serde_json::Value;

use super::avro::{incompatibilities, parse};
use super::Rules;
use crate::model::{Compatibility, Schema, SchemaType};
use crate::registry::{CompatChecker, Resolved};

const CORPUS: &str = include_str!("avro_corpus.json");

fn corpus() -> Value {
    serde_json::from_str(CORPUS).unwrap_or_else(|e| panic!("corpus: {e}"))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key)
        .and_then(Value::as_bool)
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn java_reader_writer_pairs() {
    let c = corpus();
    let pairs = c
        .get("pairs")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no pairs"));
    let mut failures = Vec::new();
    for p in pairs {
        let desc = text(p, "description");
        let (reader, writer) = (text(p, "reader"), text(p, "writer"));
        let r = parse(reader, &[]).unwrap_or_else(|e| panic!("{desc}: reader: {e}"));
        let w = parse(writer, &[]).unwrap_or_else(|e| panic!("{desc}: writer: {e}"));
        let problems = incompatibilities(&r, &w);
        let want = flag(p, "compatible");
        if problems.is_empty() != want {
            failures.push(format!("{desc}: want compatible={want}, got {problems:?}"));
            continue;
        }
        if let Some(n) = p.get("incompatibilities").and_then(Value::as_u64) {
            if u64::try_from(problems.len()).ok() != Some(n) {
                failures.push(format!(
                    "{desc}: want {n} incompatibilities, got {problems:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} pairs differ from Java:\n{}",
        failures.len(),
        pairs.len(),
        failures.join("\n")
    );
}

fn avro(t: &str) -> Resolved {
    Resolved {
        schema: Schema {
            schema_type: SchemaType::Avro,
            text: t.to_string(),
            references: Vec::new(),
        },
        refs: Vec::new(),
    }
}

#[test]
fn confluent_level_cases() {
    let c = corpus();
    let cases = c
        .get("levels")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no levels"));
    let mut failures = Vec::new();
    for case in cases {
        let desc = text(case, "description");
        let level_name = text(case, "level");
        let level = Compatibility::parse(level_name)
            .unwrap_or_else(|e| panic!("{desc}: level {level_name}: {e:?}"));
        let new = avro(text(case, "new"));
        let previous: Vec<Resolved> = case
            .get("previous")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{desc}: no previous"))
            .iter()
            .map(|v| avro(v.as_str().unwrap_or_else(|| panic!("{desc}: previous"))))
            .collect();
        // The registry hands a non-transitive level only the latest schema.
        let checked = if level.transitive() {
            &previous[..]
        } else {
            &previous[previous.len().saturating_sub(1)..]
        };
        let problems = Rules.check(level, &new, checked);
        let want = flag(case, "compatible");
        if problems.is_empty() != want {
            failures.push(format!(
                "{level_name} {desc}: want compatible={want}, got {problems:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} level cases differ from Confluent:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn reads(reader: &str, writer: &str) -> Vec<String> {
    let r = parse(reader, &[]).unwrap_or_else(|e| panic!("{reader}: {e}"));
    let w = parse(writer, &[]).unwrap_or_else(|e| panic!("{writer}: {e}"));
    incompatibilities(&r, &w)
}

#[test]
fn what_java_refuses_to_parse() {
    // An enum default must be one of the symbols; symbols are unique.
    assert!(parse(
        r#"{"type":"enum","name":"E","symbols":["A"],"default":"B"}"#,
        &[]
    )
    .is_err());
    assert!(parse(r#"{"type":"enum","name":"E","symbols":["A","A"]}"#, &[]).is_err());
    // Field names are unique within a record.
    assert!(parse(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"long"}]}"#,
        &[]
    )
    .is_err());
    // A non-string enum default is ignored, as Java does.
    assert!(parse(
        r#"{"type":"enum","name":"E","symbols":["A"],"default":1}"#,
        &[]
    )
    .is_ok());
    // Confluent: a "null" string default on a nullable field still parses.
    let bad_default = r#"{"type":"record","name":"myrecord","fields":[{"type":["null","string"],"name":"f1","default":"null"},{"type":"string","name":"f2","default":"foo"}]}"#;
    assert!(parse(bad_default, &[]).is_ok());
}

#[test]
fn a_reader_field_matching_two_writer_fields_is_refused() {
    // Java's lookupWriterField throws when the name and an alias both match.
    let reader =
        r#"{"type":"record","name":"R","fields":[{"name":"a","aliases":["b"],"type":"int"}]}"#;
    let writer = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#;
    assert!(!reads(reader, writer).is_empty());
    let one = r#"{"type":"record","name":"R","fields":[{"name":"b","type":"int"}]}"#;
    assert!(reads(reader, one).is_empty());
}

#[test]
fn name_and_contents_are_both_reported() {
    // Java goes on past a name mismatch: both problems are reported.
    let problems = reads(
        r#"{"type":"fixed","name":"F","size":4}"#,
        r#"{"type":"fixed","name":"G","size":8}"#,
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
}

/// A record of two fields of the previous level's record, `levels` deep:
/// 2^levels paths down to the leaf, one definition each.
fn layered(levels: usize, leaf: &str) -> String {
    let mut s =
        format!(r#"{{"type":"record","name":"L0","fields":[{{"name":"x","type":"{leaf}"}}]}}"#);
    for i in 1..=levels {
        s = format!(
            r#"{{"type":"record","name":"L{i}","fields":[{{"name":"a","type":{s}}},{{"name":"b","type":"L{}"}}]}}"#,
            i - 1
        );
    }
    s
}

#[test]
fn shared_types_are_checked_once() {
    // Failures are memoized too: without that this is 2^40 checks.
    let problems = reads(&layered(40, "int"), &layered(40, "long"));
    assert!(!problems.is_empty());
    assert!(problems.len() < 200, "{}", problems.len());
    assert!(reads(&layered(40, "long"), &layered(40, "int")).is_empty());
}

#[test]
fn checking_depth_is_bounded() {
    // Each text nests within what JSON parsing allows; through references
    // the whole nests deeper than the checker goes: refused, not a stack
    // overflow.
    let arrays = |inner: &str| {
        format!(
            "{}{inner}{}",
            r#"{"type":"array","items":"#.repeat(100),
            "}".repeat(100)
        )
    };
    let mut refs = Vec::new();
    let mut inner = r#""int""#.to_string();
    for i in 0..3 {
        refs.push(format!(
            r#"{{"type":"record","name":"T{i}","fields":[{{"name":"f","type":{}}}]}}"#,
            arrays(&inner)
        ));
        inner = format!(r#""T{i}""#);
    }
    let main = arrays(&inner);
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    let p = parse(&main, &refs).unwrap_or_else(|e| panic!("{e}"));
    assert!(!incompatibilities(&p, &p).is_empty());
}
