//! The registry state machine: Confluent's rules, error codes, and replay.

use crate::error::RegistryError;
use crate::model::{Compatibility, Mode, Reference, Schema, SchemaType, VersionRef};
use crate::registry::{AcceptAll, CompatChecker, Record, Registry, Resolved};

#[test]
fn equivalent_avro_spellings_share_an_id() {
    let mut r = Registry::new();
    let same = [
        (r#""string""#, r#"{"type":"string"}"#),
        (
            r#"{"type":"record","name":"n.R","fields":[{"name":"a","type":{"type":"int"}},{"name":"in","type":{"type":"fixed","name":"F","size":2}},{"name":"again","type":"F"}]}"#,
            r#"{"type":"record","name":"R","namespace":"n","fields":[{"name":"a","type":"int"},{"name":"in","type":{"type":"fixed","name":"n.F","size":2}},{"name":"again","type":"n.F"}]}"#,
        ),
    ];
    for (i, (a, b)) in same.iter().enumerate() {
        let (ia, _, _) = r.register(&format!("a{i}"), avro(a), &AcceptAll).unwrap();
        let (ib, _, _) = r.register(&format!("b{i}"), avro(b), &AcceptAll).unwrap();
        assert_eq!(ia, ib, "{a} vs {b}");
    }
    // Different names in different namespaces stay different.
    let (x, _, _) = r
        .register(
            "x",
            avro(r#"{"type":"fixed","name":"F","namespace":"p","size":2}"#),
            &AcceptAll,
        )
        .unwrap();
    let (y, _, _) = r
        .register(
            "y",
            avro(r#"{"type":"fixed","name":"F","namespace":"q","size":2}"#),
            &AcceptAll,
        )
        .unwrap();
    assert_ne!(x, y);
}

fn avro(text: &str) -> Schema {
    Schema {
        schema_type: SchemaType::Avro,
        text: text.to_string(),
        references: Vec::new(),
    }
}

const A: &str = r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}"#;
const A_SPACED: &str = r#"{ "name" : "A", "type": "record",
    "fields": [ { "type": "int", "name": "x" } ] }"#;
const B: &str = r#"{"type":"record","name":"B","fields":[{"name":"y","type":"string"}]}"#;

/// Rejects everything, naming the level it was asked about.
struct RejectAll;
impl CompatChecker for RejectAll {
    fn check(&self, level: Compatibility, _: &Resolved, existing: &[Resolved]) -> Vec<String> {
        if existing.is_empty() {
            Vec::new()
        } else {
            vec![format!("{level:?}: rejected")]
        }
    }
}

fn replayed(log: &[Record]) -> Registry {
    let mut r = Registry::new();
    for rec in log {
        assert!(r.replay(&rec.key, rec.value.as_deref()), "{rec:?}");
    }
    r
}

#[test]
fn ids_are_content_addressed_and_registration_is_idempotent() {
    let mut r = Registry::new();
    let mut log = Vec::new();
    let (id, _, recs) = r.register("s1", avro(A), &AcceptAll).unwrap();
    log.extend(recs);
    let (again, _, recs) = r.register("s1", avro(A_SPACED), &AcceptAll).unwrap();
    assert_eq!(
        (again, recs.len()),
        (id, 0),
        "whitespace and key order ignored"
    );
    let (other, _, recs) = r.register("s2", avro(A), &AcceptAll).unwrap();
    assert_eq!(other, id, "same schema, same id in another subject");
    log.extend(recs);
    let (idb, _, recs) = r.register("s1", avro(B), &AcceptAll).unwrap();
    log.extend(recs);
    assert_eq!(idb, id + 1);
    assert_eq!(r.versions("s1", false).unwrap(), vec![1, 2]);
    assert_eq!(r.lookup("s1", &avro(A_SPACED), false).unwrap().version, 1);
    assert_eq!(
        r.lookup("nope", &avro(A), false).unwrap_err().error_code(),
        40401
    );
    assert_eq!(
        r.lookup("s2", &avro(B), false).unwrap_err().error_code(),
        40403
    );
    let v = r.version("s1", VersionRef::Latest, false).unwrap();
    assert_eq!((v.version, v.id), (2, idb));
    assert_eq!(
        r.versions_of_id(id, false),
        vec![("s1".to_string(), 1), ("s2".to_string(), 1)]
    );
    // Replay gives the same answers.
    let back = replayed(&log);
    assert_eq!(back.versions("s1", false).unwrap(), vec![1, 2]);
    assert_eq!(back.schema_by_id(idb).unwrap().text, B);
}

#[test]
fn deletes_follow_confluent() {
    let mut r = Registry::new();
    let mut log = Vec::new();
    let (id, _, recs) = r.register("s", avro(A), &AcceptAll).unwrap();
    log.extend(recs);
    log.extend(r.register("s", avro(B), &AcceptAll).unwrap().2);
    // Permanent first is refused; soft, then soft again is refused.
    let code = |e: RegistryError| e.error_code();
    assert_eq!(
        code(
            r.delete_version("s", VersionRef::Number(1), true)
                .unwrap_err()
        ),
        40407
    );
    log.extend(
        r.delete_version("s", VersionRef::Number(1), false)
            .unwrap()
            .1,
    );
    assert_eq!(
        code(
            r.delete_version("s", VersionRef::Number(1), false)
                .unwrap_err()
        ),
        40406
    );
    assert_eq!(
        code(r.version("s", VersionRef::Number(1), false).unwrap_err()),
        40402,
        "a soft-deleted version is not found without deleted=true"
    );
    // The id still resolves after a soft delete.
    assert!(r.schema_by_id(id).is_ok());
    assert!(r.version("s", VersionRef::Number(1), true).unwrap().deleted);
    // Subject: permanent before soft is refused.
    assert_eq!(code(r.delete_subject("s", true).unwrap_err()), 40405);
    let (versions, recs) = r.delete_subject("s", false).unwrap();
    assert_eq!(versions, vec![2]);
    log.extend(recs);
    assert_eq!(code(r.delete_subject("s", false).unwrap_err()), 40404);
    assert!(r.subjects("", false, false).is_empty());
    assert_eq!(r.subjects("", true, false), vec!["s".to_string()]);
    assert_eq!(r.subjects("", false, true), vec!["s".to_string()]);
    let (versions, recs) = r.delete_subject("s", true).unwrap();
    assert_eq!(versions, vec![1, 2]);
    log.extend(recs);
    assert_eq!(code(r.schema_by_id(id).unwrap_err()), 40403);
    // The subject is gone (40401 even with deleted=true), and a new
    // registration starts again at version 1, as in Confluent.
    assert_eq!(code(r.versions("s", true).unwrap_err()), 40401);
    assert_eq!(code(r.delete_subject("s", true).unwrap_err()), 40401);
    assert_eq!(code(r.delete_subject("s", false).unwrap_err()), 40401);
    let (_, _, recs) = r.register("s", avro(A), &AcceptAll).unwrap();
    log.extend(recs);
    assert_eq!(r.versions("s", false).unwrap(), vec![1]);
    let back = replayed(&log);
    assert_eq!(back.versions("s", true).unwrap(), vec![1]);
    assert_eq!(
        back.subjects("", false, false),
        r.subjects("", false, false)
    );
}

#[test]
fn compatibility_configs_modes_and_references() {
    let mut r = Registry::new();
    let mut log = Vec::new();
    log.extend(r.register("s", avro(A), &RejectAll).unwrap().2);
    let err = r.register("s", avro(B), &RejectAll).unwrap_err();
    assert_eq!((err.error_code(), err.http_status()), (409, 409));
    assert!(err.to_string().contains("Backward: rejected"));
    // Per-subject NONE lets it in; the global level is untouched.
    assert_eq!(
        r.subject_config("s", false).unwrap_err().error_code(),
        40408
    );
    assert_eq!(
        r.subject_config("s", true).unwrap(),
        Compatibility::Backward
    );
    log.extend(r.set_config(Some("s"), Compatibility::None));
    log.extend(r.register("s", avro(B), &RejectAll).unwrap().2);
    assert_eq!(r.compatibility(None), Compatibility::Backward);
    assert!(Compatibility::parse("sideways").is_err());
    assert_eq!(
        Compatibility::parse("full_transitive").unwrap(),
        Compatibility::FullTransitive
    );
    // Read-only mode refuses writes.
    log.extend(r.set_mode(Some("s"), Mode::Readonly, false).unwrap());
    assert_eq!(
        r.register("s", avro(r#""string""#), &AcceptAll)
            .unwrap_err()
            .error_code(),
        42205
    );
    assert_eq!(Mode::parse("bogus").unwrap_err().error_code(), 42204);
    log.extend(r.delete_mode(Some("s")).1);
    // A referenced version cannot be deleted.
    let with_ref = Schema {
        schema_type: SchemaType::Avro,
        text: r#"{"type":"record","name":"C","fields":[{"name":"a","type":"A"}]}"#.into(),
        references: vec![Reference {
            name: "A".into(),
            subject: "s".into(),
            version: 1,
        }],
    };
    log.extend(r.register("c", with_ref.clone(), &AcceptAll).unwrap().2);
    assert_eq!(r.referenced_by("s", 1).len(), 1);
    assert_eq!(
        r.delete_version("s", VersionRef::Number(1), false)
            .unwrap_err()
            .error_code(),
        42206
    );
    let dangling = Schema {
        references: vec![Reference {
            name: "X".into(),
            subject: "s".into(),
            version: 99,
        }],
        ..with_ref
    };
    assert_eq!(
        r.register("d", dangling, &AcceptAll)
            .unwrap_err()
            .error_code(),
        42201
    );
    // Versions and bad input.
    assert_eq!(VersionRef::parse("-1").unwrap(), VersionRef::Latest);
    for bad in ["0", "-2", "abc", "99999999999"] {
        assert_eq!(VersionRef::parse(bad).unwrap_err().error_code(), 42202);
    }
    assert_eq!(
        r.register("s", avro("{not json"), &AcceptAll)
            .unwrap_err()
            .error_code(),
        42201
    );
    assert!(SchemaType::parse(Some("PROTOBUF")).is_err());
    // Replay restores configs and modes too.
    let back = replayed(&log);
    assert_eq!(back.compatibility(Some("s")), Compatibility::None);
    assert_eq!(back.mode(Some("s")), Mode::Readwrite);
    assert_eq!(back.referenced_by("s", 1), r.referenced_by("s", 1));
    // Records that are not ours are skipped, not fatal.
    let mut x = Registry::new();
    assert!(!x.replay("garbage", Some("{}")));
    assert!(!x.replay(
        r#"{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}"#,
        Some("[]")
    ));
}
