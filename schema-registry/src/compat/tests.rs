//! Avro compatibility cases after Apache Avro's `TestSchemaCompatibility*`
//! and Confluent's `AvroCompatibilityTest`: (reader, writer, compatible).

use super::avro::{incompatibilities, parse};
use super::Rules;
use crate::model::{Compatibility, Schema, SchemaType};
use crate::registry::{CompatChecker, Resolved};

fn reads(reader: &str, writer: &str) -> bool {
    let r = parse(reader, &[]).unwrap_or_else(|e| panic!("{reader}: {e}"));
    let w = parse(writer, &[]).unwrap_or_else(|e| panic!("{writer}: {e}"));
    incompatibilities(&r, &w).is_empty()
}

const INT_RECORD: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
const LONG_RECORD: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;
const TWO_FIELDS: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;
const TWO_FIELDS_DEFAULT: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}]}"#;
const NULLABLE_NO_DEFAULT: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":["null","string"]}]}"#;

#[test]
fn the_java_rules() {
    let cases: &[(&str, &str, bool)] = &[
        // Primitives and promotions.
        (r#""int""#, r#""int""#, true),
        (r#""long""#, r#""int""#, true),
        (r#""int""#, r#""long""#, false),
        (r#""float""#, r#""long""#, true),
        (r#""double""#, r#""float""#, true),
        (r#""float""#, r#""double""#, false),
        (r#""bytes""#, r#""string""#, true),
        (r#""string""#, r#""bytes""#, true),
        (r#""boolean""#, r#""int""#, false),
        (r#""null""#, r#""null""#, true),
        // Records: promotion inside, added and removed fields.
        (LONG_RECORD, INT_RECORD, true),
        (INT_RECORD, LONG_RECORD, false),
        (TWO_FIELDS, INT_RECORD, false),
        (TWO_FIELDS_DEFAULT, INT_RECORD, true),
        (INT_RECORD, TWO_FIELDS, true),
        // A new nullable field still needs a default.
        (NULLABLE_NO_DEFAULT, INT_RECORD, false),
        // Names: unqualified comparison, and the reader's aliases.
        (
            r#"{"type":"record","name":"a.R","fields":[{"name":"a","type":"int"}]}"#,
            r#"{"type":"record","name":"b.R","fields":[{"name":"a","type":"int"}]}"#,
            true,
        ),
        (
            r#"{"type":"record","name":"S","fields":[{"name":"a","type":"int"}]}"#,
            INT_RECORD,
            false,
        ),
        (
            r#"{"type":"record","name":"S","aliases":["R"],"fields":[{"name":"a","type":"int"}]}"#,
            INT_RECORD,
            true,
        ),
        // Field aliases.
        (
            r#"{"type":"record","name":"R","fields":[{"name":"z","aliases":["a"],"type":"int"}]}"#,
            INT_RECORD,
            true,
        ),
        // Enums: losing symbols needs a reader default.
        (
            r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#,
            r#"{"type":"enum","name":"E","symbols":["A","B"]}"#,
            true,
        ),
        (
            r#"{"type":"enum","name":"E","symbols":["A","B"]}"#,
            r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#,
            false,
        ),
        (
            r#"{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}"#,
            r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#,
            true,
        ),
        // Fixed: name and size.
        (
            r#"{"type":"fixed","name":"F","size":4}"#,
            r#"{"type":"fixed","name":"F","size":4}"#,
            true,
        ),
        (
            r#"{"type":"fixed","name":"F","size":8}"#,
            r#"{"type":"fixed","name":"F","size":4}"#,
            false,
        ),
        // Unions: every writer branch readable; some reader branch reads.
        (r#"["null","long"]"#, r#""int""#, true),
        (r#""int""#, r#"["null","int"]"#, false),
        (r#"["null","int","string"]"#, r#"["null","int"]"#, true),
        (r#"["null","int"]"#, r#"["null","int","string"]"#, false),
        (r#""long""#, r#"["int"]"#, true),
        // Arrays and maps.
        (
            r#"{"type":"array","items":"long"}"#,
            r#"{"type":"array","items":"int"}"#,
            true,
        ),
        (
            r#"{"type":"map","values":"int"}"#,
            r#"{"type":"map","values":"long"}"#,
            false,
        ),
        (
            r#"{"type":"array","items":"int"}"#,
            r#"{"type":"map","values":"int"}"#,
            false,
        ),
        // Logical types are ignored (decimal precision may change).
        (
            r#"{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}"#,
            r#"{"type":"bytes","logicalType":"decimal","precision":5,"scale":2}"#,
            true,
        ),
    ];
    for (reader, writer, want) in cases {
        assert_eq!(
            reads(reader, writer),
            *want,
            "reader {reader} writer {writer}"
        );
    }
}

#[test]
fn recursive_and_named_references() {
    let list = r#"{"type":"record","name":"List","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","List"]}]}"#;
    let list_long = r#"{"type":"record","name":"List","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","List"]}]}"#;
    assert!(reads(list, list));
    assert!(reads(list_long, list));
    assert!(!reads(list, list_long));
    // A named type defined inline in one and used by name in the other.
    let inline = r#"{"type":"record","name":"O","fields":[{"name":"a","type":{"type":"enum","name":"E","symbols":["X"]}},{"name":"b","type":"E"}]}"#;
    assert!(reads(inline, inline));
}

#[test]
fn bad_schemas_are_refused() {
    for bad in [
        r#""nope""#,
        r#"{"type":"record","name":"R"}"#,
        r#"{"type":"fixed","name":"F"}"#,
        r#"{"type":"enum","name":"E","symbols":[1]}"#,
        r#"{"name":"x"}"#,
        "42",
    ] {
        assert!(parse(bad, &[]).is_err(), "{bad}");
    }
    let deep = format!("{}\"int\"{}", "[".repeat(1000), "]".repeat(1000));
    assert!(parse(&deep, &[]).is_err(), "nesting is bounded");
}

#[test]
fn levels_pick_the_directions() {
    let s = |t: &str| Resolved {
        schema: Schema {
            schema_type: SchemaType::Avro,
            text: t.to_string(),
            references: Vec::new(),
        },
        refs: Vec::new(),
    };
    let (old, added) = (s(INT_RECORD), s(TWO_FIELDS));
    // Adding a field without a default: new readers cannot read old data
    // (backward fails) but old readers can read new data (forward passes).
    assert!(!Rules
        .check(Compatibility::Backward, &added, std::slice::from_ref(&old))
        .is_empty());
    assert!(Rules
        .check(Compatibility::Forward, &added, std::slice::from_ref(&old))
        .is_empty());
    assert!(!Rules
        .check(Compatibility::Full, &added, std::slice::from_ref(&old))
        .is_empty());
    assert!(Rules
        .check(Compatibility::None, &added, std::slice::from_ref(&old))
        .is_empty());
    let with_default = s(TWO_FIELDS_DEFAULT);
    assert!(Rules
        .check(
            Compatibility::Full,
            &with_default,
            std::slice::from_ref(&old)
        )
        .is_empty());
}
