//! Every corpus case under the levels, through `Rules` as the registry
//! calls it: BACKWARD (the new schema reads the old one's data) and FORWARD
//! (the old reads the new) give the case's verdict with the roles set
//! accordingly, and FULL is both directions. Then transitive levels
//! through registration, where only the transitive level sees the oldest
//! version.

use serde_json::Value;

use super::Rules;
use crate::model::{Compatibility, Schema, SchemaType};
use crate::registry::{CompatChecker, Registry, Resolved};

fn resolved(schema_type: SchemaType, text: &str) -> Resolved {
    Resolved {
        schema: Schema {
            schema_type,
            text: text.to_string(),
            references: Vec::new(),
        },
        refs: Vec::new(),
    }
}

fn ok(level: Compatibility, new: &Resolved, old: &Resolved) -> bool {
    Rules
        .check(level, new, std::slice::from_ref(old))
        .is_empty()
}

/// `evolved` reads data of `before` iff `compatible`; check all three levels.
fn check_levels(name: &str, before: &Resolved, evolved: &Resolved, compatible: bool) {
    use Compatibility::{Backward, Forward, Full};
    assert_eq!(
        ok(Backward, evolved, before),
        compatible,
        "BACKWARD: {name}"
    );
    assert_eq!(ok(Forward, before, evolved), compatible, "FORWARD: {name}");
    let reverse = ok(Backward, before, evolved);
    assert_eq!(
        ok(Full, evolved, before),
        compatible && reverse,
        "FULL: {name}"
    );
    assert_eq!(
        ok(Full, before, evolved),
        compatible && reverse,
        "FULL swapped: {name}"
    );
}

#[test]
fn avro_pairs_under_backward_forward_and_full() {
    let corpus: Value = serde_json::from_str(include_str!("avro_corpus.json")).unwrap();
    let pairs = corpus["pairs"].as_array().unwrap();
    let mut full_both = 0;
    for p in pairs {
        let name = p["description"].as_str().unwrap();
        let reader = resolved(SchemaType::Avro, p["reader"].as_str().unwrap());
        let writer = resolved(SchemaType::Avro, p["writer"].as_str().unwrap());
        let compatible = p["compatible"].as_bool().unwrap();
        check_levels(name, &writer, &reader, compatible);
        if ok(Compatibility::Full, &reader, &writer) {
            full_both += 1;
        }
    }
    assert!(
        pairs.len() > 100 && full_both > 10,
        "{} {full_both}",
        pairs.len()
    );
}

#[test]
fn json_cases_under_backward_forward_and_full() {
    let corpus: Vec<Value> = serde_json::from_str(include_str!("json_corpus.json")).unwrap();
    for c in &corpus {
        let name = c["description"].as_str().unwrap();
        let original = resolved(SchemaType::Json, &c["original"].to_string());
        let update = resolved(SchemaType::Json, &c["update"].to_string());
        check_levels(name, &original, &update, c["compatible"].as_bool().unwrap());
    }
    assert!(corpus.len() > 100);
}

fn avro(text: &str) -> Schema {
    Schema {
        schema_type: SchemaType::Avro,
        text: text.to_string(),
        references: Vec::new(),
    }
}

fn json_schema(text: &str) -> Schema {
    Schema {
        schema_type: SchemaType::Json,
        text: text.to_string(),
        references: Vec::new(),
    }
}

/// Registers `versions` in order under `level`; whether the last is taken.
fn last_accepted(level: Compatibility, versions: &[Schema]) -> bool {
    let mut r = Registry::new();
    r.set_config(Some("s"), level);
    let (head, last) = versions.split_at(versions.len() - 1);
    for v in head {
        r.register("s", v.clone(), &Rules).unwrap();
    }
    r.register("s", last[0].clone(), &Rules).is_ok()
}

#[test]
fn transitive_levels_through_registration() {
    use Compatibility::*;
    // Avro: v2 adds f2 with a default; v3 drops the default. v3 reads v2's
    // data (f2 is there) but not v1's.
    let v1 = avro(r#"{"type":"record","name":"R","fields":[{"name":"f1","type":"string"}]}"#);
    let v2 = avro(
        r#"{"type":"record","name":"R","fields":[{"name":"f1","type":"string"},{"name":"f2","type":"string","default":"foo"}]}"#,
    );
    let v3 = avro(
        r#"{"type":"record","name":"R","fields":[{"name":"f1","type":"string"},{"name":"f2","type":"string"}]}"#,
    );
    let chain = [v1.clone(), v2.clone(), v3.clone()];
    assert!(last_accepted(Backward, &chain));
    assert!(!last_accepted(BackwardTransitive, &chain));
    assert!(last_accepted(None, &chain));
    // FORWARD, the chain reversed: the old reader v3 (f2 required) reads
    // v2's data, v2 reads v1's (f2's default), but v3 cannot read v1's.
    let back = [v3, v2, v1];
    assert!(last_accepted(Forward, &back));
    assert!(!last_accepted(ForwardTransitive, &back));
    // FULL: w2 gives `a` a default, w3 drops it; each step reads both ways,
    // but w1's reader cannot read w3's data (no `a`, no default in w1).
    let w1 = avro(r#"{"type":"record","name":"W","fields":[{"name":"a","type":"int"}]}"#);
    let w2 =
        avro(r#"{"type":"record","name":"W","fields":[{"name":"a","type":"int","default":1}]}"#);
    let w3 = avro(r#"{"type":"record","name":"W","fields":[]}"#);
    let chain = [w1, w2, w3];
    assert!(last_accepted(Full, &chain));
    assert!(!last_accepted(FullTransitive, &chain));
    // JSON Schema: widening steps pass even transitively; narrowing fails.
    let j1 = json_schema(r#"{"type":"integer"}"#);
    let j2 = json_schema(r#"{"type":"number"}"#);
    let j3 = json_schema(r#"{}"#);
    assert!(last_accepted(
        BackwardTransitive,
        &[j1.clone(), j2.clone(), j3.clone()]
    ));
    assert!(!last_accepted(Backward, &[j3, j2]));
}
