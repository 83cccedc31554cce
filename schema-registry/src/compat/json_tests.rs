//! JSON Schema compatibility: the difference corpus converted from
//! Confluent's `SchemaDiff` tests, and parsing and reference edge cases.

use serde_json::Value;

use super::json::{changes, parse, MAX_DEPTH};

const CORPUS: &str = include_str!("json_corpus.json");

/// Corpus cases we knowingly decide differently: (description, reason).
const KNOWN_GAPS: &[(&str, &str)] = &[];

fn parsed(v: &Value) -> super::json::Parsed {
    parse(&v.to_string(), &[]).unwrap()
}

#[test]
fn corpus_verdicts_match_confluent() {
    let cases: Vec<Value> = serde_json::from_str(CORPUS).unwrap();
    assert!(cases.len() > 100, "corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let description = case["description"].as_str().unwrap();
        if KNOWN_GAPS.iter().any(|(d, _)| *d == description) {
            continue;
        }
        let found = changes(&parsed(&case["original"]), &parsed(&case["update"]));
        let compatible = case["compatible"].as_bool().unwrap();
        if found.is_empty() != compatible {
            failures.push(format!(
                "{description}: expected compatible={compatible}, got {found:?} (Confluent: {})",
                case["changes"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The incompatible differences we report are among Confluent's listed
/// ones, by kind and path.
#[test]
fn corpus_incompatible_differences_are_named_as_confluent_does() {
    let cases: Vec<Value> = serde_json::from_str(CORPUS).unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let expected: Vec<&str> = case["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        for found in changes(&parsed(&case["original"]), &parsed(&case["update"])) {
            if !expected.contains(&found.as_str()) {
                failures.push(format!(
                    "{}: {found} not in {expected:?}",
                    case["description"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parse_rejects_what_is_not_a_schema() {
    assert!(parse("{not json", &[])
        .unwrap_err()
        .contains("not valid JSON"));
    assert!(parse("42", &[]).unwrap_err().contains("a number"));
    assert!(parse("\"string\"", &[]).unwrap_err().contains("a string"));
    assert!(parse("[]", &[]).unwrap_err().contains("an array"));
    assert!(parse("true", &[]).is_ok());
    assert!(parse("{}", &[]).is_ok());
    assert!(parse(r#"{"type":"objectx"}"#, &[])
        .unwrap_err()
        .contains("unknown type"));
    assert!(parse(r#"{"type":["string",5]}"#, &[]).is_err());
    assert!(parse(r#"{"items":{"type":"nope"}}"#, &[]).is_err());
    // A property named `type`, and data that looks like a schema, are fine.
    let ok = r#"{"type":["object","null"],"properties":{"type":{"type":"string"}},
        "default":{"type":"anything"},"enum":[{"type":"x"}]}"#;
    assert!(parse(ok, &[]).is_ok());
}

#[test]
fn parse_bounds_nesting_depth() {
    let nest = |n: usize| format!("{}{{}}{}", "{\"not\":".repeat(n), "}".repeat(n));
    assert!(parse(&nest(MAX_DEPTH - 1), &[]).is_ok());
    let err = parse(&nest(MAX_DEPTH + 1), &[]).unwrap_err();
    assert!(err.contains("deeper"), "{err}");
    // Far deeper than serde_json's own limit: an error, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse(&deep, &[]).is_err());
    let deep = format!("{}{{}}{}", "{\"not\":".repeat(100_000), "}".repeat(100_000));
    assert!(parse(&deep, &[]).is_err());
}

#[test]
fn parse_rejects_unresolvable_refs() {
    let err = parse(r##"{"$ref":"#/definitions/missing"}"##, &[]).unwrap_err();
    assert!(err.contains("does not resolve"), "{err}");
    assert!(parse(r#"{"$ref":"other.json"}"#, &[]).is_err());
    let cycle = r##"{"$ref":"#/definitions/a","definitions":{"a":{"$ref":"#"}}}"##;
    assert!(parse(cycle, &[]).is_err());
    // A `$ref` inside data is not a reference.
    assert!(parse(r#"{"enum":[{"$ref":"nowhere"}]}"#, &[]).is_ok());
}

const ADDRESS_V1: &str = r#"{"type":"object","properties":{"street":{"type":"string"}}}"#;
const ADDRESS_V2: &str = r#"{"type":"object","properties":{"street":{"type":"number"}}}"#;

#[test]
fn ref_to_a_named_reference() {
    let schema = r#"{"type":"object","properties":{"home":{"$ref":"address.json"}}}"#;
    let v1 = parse(schema, &[("address.json", ADDRESS_V1)]).unwrap();
    let v1_again = parse(schema, &[("address.json", ADDRESS_V1)]).unwrap();
    let v2 = parse(schema, &[("address.json", ADDRESS_V2)]).unwrap();
    assert!(changes(&v1, &v1_again).is_empty());
    assert_eq!(
        changes(&v1, &v2),
        vec!["TYPE_CHANGED #/properties/home/properties/street"]
    );
    // With a fragment into the referenced schema.
    let street = r#"{"properties":{"s":{"$ref":"address.json#/properties/street"}}}"#;
    let s1 = parse(street, &[("address.json", ADDRESS_V1)]).unwrap();
    let s2 = parse(street, &[("address.json", ADDRESS_V2)]).unwrap();
    assert_eq!(changes(&s1, &s2), vec!["TYPE_CHANGED #/properties/s"]);
}

#[test]
fn local_definition_refs() {
    let v1 = parse(
        r##"{"properties":{"a":{"$ref":"#/definitions/d"}},"definitions":{"d":{"type":"string","maxLength":5}}}"##,
        &[],
    )
    .unwrap();
    let v2 = parse(
        r##"{"properties":{"a":{"$ref":"#/definitions/d"}},"definitions":{"d":{"type":"string","maxLength":3}}}"##,
        &[],
    )
    .unwrap();
    assert!(changes(&v2, &v1).is_empty());
    assert_eq!(
        changes(&v1, &v2),
        vec!["MAX_LENGTH_DECREASED #/properties/a/maxLength"]
    );
}

#[test]
fn recursive_schemas_terminate() {
    let tree = |leaf: &str| {
        format!(
            r##"{{"$ref":"#/definitions/node","definitions":{{"node":{{"type":"object",
            "properties":{{"value":{{"type":"{leaf}"}},
            "children":{{"type":"array","items":{{"$ref":"#/definitions/node"}}}},
            "either":{{"oneOf":[{{"type":"null"}},{{"$ref":"#/definitions/node"}}]}}}}}}}}}}"##
        )
    };
    let a = parse(&tree("string"), &[]).unwrap();
    let b = parse(&tree("string"), &[]).unwrap();
    let c = parse(&tree("number"), &[]).unwrap();
    assert!(changes(&a, &b).is_empty());
    assert!(changes(&a, &a).is_empty());
    assert!(changes(&a, &c).contains(&"TYPE_CHANGED #/properties/value".to_string()));
    // Self reference at the root.
    let root = parse(r##"{"properties":{"next":{"$ref":"#"}}}"##, &[]).unwrap();
    assert!(changes(&root, &root).is_empty());
}

#[test]
fn wide_unions_are_bounded() {
    let branches: Vec<String> = (0..400)
        .map(|i| format!(r#"{{"type":"object","properties":{{"p{i}":{{"type":"string"}}}}}}"#))
        .collect();
    let schema = format!(r#"{{"anyOf":[{}]}}"#, branches.join(","));
    let a = parse(&schema, &[]).unwrap();
    // 400 x 400 branch pairs exceed the work bound: reported, not hung.
    let found = changes(&a, &a);
    assert!(
        found.iter().all(|c| c.starts_with("SCHEMA_TOO_COMPLEX")),
        "{found:?}"
    );
}

#[test]
fn pattern_properties_cover_by_pattern() {
    let closed = parse(
        r#"{"properties":{"x_1":{"type":"integer"}},"additionalProperties":false}"#,
        &[],
    )
    .unwrap();
    let by_pattern = |p: &str| {
        parse(
            &format!(
                r#"{{"additionalProperties":false,"patternProperties":{{"{p}":{{"type":"number"}}}}}}"#
            ),
            &[],
        )
        .unwrap()
    };
    assert!(changes(&closed, &by_pattern("^x_[0-9]+$")).is_empty());
    assert!(changes(&closed, &by_pattern("_\\\\d")).is_empty());
    assert_eq!(
        changes(&closed, &by_pattern("^y_")),
        vec!["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL #/properties/x_1"]
    );
}

/// A long chain of distinct definitions nests comparisons far deeper than
/// the document: the walk stops at its depth bound instead of the stack.
#[test]
fn long_reference_chains_are_bounded() {
    let chain = |leaf: &str| {
        let defs: Vec<String> = (0..2000)
            .map(|i| {
                format!(
                    r##""d{i}":{{"properties":{{"n":{{"$ref":"#/definitions/d{}"}}}}}}"##,
                    i + 1
                )
            })
            .chain(std::iter::once(format!(r#""d2000":{{"type":"{leaf}"}}"#)))
            .collect();
        format!(
            r##"{{"$ref":"#/definitions/d0","definitions":{{{}}}}}"##,
            defs.join(",")
        )
    };
    let a = parse(&chain("string"), &[]).unwrap();
    let b = parse(&chain("number"), &[]).unwrap();
    let found = changes(&a, &b);
    assert!(
        found.iter().any(|c| c.starts_with("SCHEMA_TOO_COMPLEX")),
        "{found:?}"
    );
}
