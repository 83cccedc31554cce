//! The registry as a deterministic state machine: subjects, versions,
//! content-addressed ids, configs and modes. Every change returns the
//! records to append to `_schemas` (Confluent's key/value JSON layout), and
//! `replay` rebuilds the same state from them, so the store can be the
//! broker's log or memory.
//!
//! Rules (Confluent's): the same schema (whitespace, key order and
//! equivalent Avro spellings aside) gets the same id in every subject;
//! re-registering a live schema returns its id and writes nothing; a new
//! version is the highest ever used in the subject plus one; compatibility
//! is checked only against live versions; ids resolve after a soft delete;
//! a permanent delete needs a soft delete first. Permanently deleted
//! versions stay in the log as records marked `permanent` (not tombstones),
//! so their numbers are not reused while the subject has any version left;
//! once its last version is permanently deleted the subject is gone and a
//! new registration starts again at version 1, as in Confluent.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, RegistryResult};
use crate::model::{Compatibility, Mode, Reference, Schema, SchemaType, VersionRef};

/// A key and value for `_schemas` (value `None` deletes a config or mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub value: Option<String>,
}

/// A schema with the schemas it references, transitively: `(name, text)`
/// pairs, dependencies before the schemas that use them, each named as the
/// reference that brought it in names it.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub schema: Schema,
    pub refs: Vec<(String, String)>,
}

/// Validates schemas and decides compatibility, per schema language.
pub trait CompatChecker {
    /// Why `schema` is not a valid schema of its type, if it is not.
    fn validate(&self, _schema: &Resolved) -> Result<(), String> {
        Ok(())
    }
    /// The reasons `new` cannot join a subject whose live versions (oldest
    /// first) are `existing`, under `level`; empty when it can.
    fn check(&self, level: Compatibility, new: &Resolved, existing: &[Resolved]) -> Vec<String>;
}

/// A snapshot of which schema ids exist and which subjects use them, for
/// checks that must not wait on the registry's lock (Produce).
#[derive(Debug, Clone, Default)]
pub struct IdIndex {
    ids: std::collections::HashSet<i32>,
    by_subject: HashMap<String, std::collections::HashSet<i32>>,
}

impl IdIndex {
    /// Whether any schema has this id.
    pub fn knows(&self, id: i32) -> bool {
        self.ids.contains(&id)
    }

    /// Whether `id` is a live version of `subject`.
    pub fn in_subject(&self, subject: &str, id: i32) -> bool {
        self.by_subject
            .get(subject)
            .is_some_and(|s| s.contains(&id))
    }
}

/// An id and version a registration asks for (IMPORT mode only).
#[derive(Debug, Clone, Copy, Default)]
pub struct Imported {
    pub id: Option<i32>,
    pub version: Option<i32>,
}

/// Accepts everything (level NONE everywhere); for tests of the rest.
pub struct AcceptAll;

impl CompatChecker for AcceptAll {
    fn check(&self, _: Compatibility, _: &Resolved, _: &[Resolved]) -> Vec<String> {
        Vec::new()
    }
}

/// How deep references may nest, and how many a schema may pull in.
const MAX_REFERENCE_DEPTH: usize = 32;
const MAX_REFERENCES: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    id: i32,
    deleted: bool,
}

#[derive(Debug, Clone, Default)]
struct Subject {
    /// Live and soft-deleted versions.
    versions: BTreeMap<i32, Version>,
    /// Highest version ever used, permanently deleted ones included.
    max_version: i32,
}

impl Subject {
    fn live(&self) -> impl Iterator<Item = (&i32, &Version)> {
        self.versions.iter().filter(|(_, v)| !v.deleted)
    }
}

/// What a registered version is, as the REST API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    pub schema: Schema,
    pub deleted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaValue {
    subject: String,
    version: i32,
    id: i32,
    schema: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Reference>,
    #[serde(default)]
    deleted: bool,
    /// Fjord: a permanent delete (keeps the version number used).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    permanent: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Key {
    keytype: String,
    subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<i32>,
    magic: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigValue {
    compatibility_level: Compatibility,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ModeValue {
    mode: Mode,
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[derive(Debug, Default)]
pub struct Registry {
    schemas: BTreeMap<i32, Schema>,
    by_canonical: HashMap<String, i32>,
    subjects: BTreeMap<String, Subject>,
    max_id: i32,
    global_compat: Option<Compatibility>,
    subject_compat: BTreeMap<String, Compatibility>,
    global_mode: Option<Mode>,
    subject_mode: BTreeMap<String, Mode>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    // ----- reads -----

    pub fn schema_by_id(&self, id: i32) -> RegistryResult<&Schema> {
        self.schemas
            .get(&id)
            .ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))
    }

    /// Every id, ascending.
    pub fn ids(&self) -> impl Iterator<Item = (&i32, &Schema)> {
        self.schemas.iter()
    }

    /// (subject, version) pairs using `id`.
    pub fn versions_of_id(&self, id: i32, deleted: bool) -> Vec<(String, i32)> {
        self.subjects
            .iter()
            .flat_map(|(s, sub)| {
                sub.versions
                    .iter()
                    .filter(move |(_, v)| v.id == id && (deleted || !v.deleted))
                    .map(move |(n, _)| (s.clone(), *n))
            })
            .collect()
    }

    /// Subject names: live ones, or with `deleted` also soft-deleted ones,
    /// or with `deleted_only` only those.
    pub fn subjects(&self, prefix: &str, deleted: bool, deleted_only: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .filter(|(_, s)| {
                let live = s.live().next().is_some();
                let soft = s.versions.values().any(|v| v.deleted);
                if deleted_only {
                    soft && !live
                } else {
                    live || (deleted && soft)
                }
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn subject(&self, name: &str, deleted: bool) -> RegistryResult<&Subject> {
        match self.subjects.get(name) {
            Some(s) if deleted || s.live().next().is_some() => Ok(s),
            _ => Err(RegistryError::SubjectNotFound(name.to_string())),
        }
    }

    /// A subject's version numbers.
    pub fn versions(&self, subject: &str, deleted: bool) -> RegistryResult<Vec<i32>> {
        let s = self.subject(subject, deleted)?;
        Ok(s.versions
            .iter()
            .filter(|(_, v)| deleted || !v.deleted)
            .map(|(n, _)| *n)
            .collect())
    }

    pub fn version(
        &self,
        subject: &str,
        v: VersionRef,
        deleted: bool,
    ) -> RegistryResult<Registered> {
        let s = self.subject(subject, deleted)?;
        let found = match v {
            VersionRef::Latest => s.versions.iter().rev().find(|(_, x)| deleted || !x.deleted),
            VersionRef::Number(n) => s
                .versions
                .get_key_value(&n)
                .filter(|(_, x)| deleted || !x.deleted),
        };
        let (n, x) = found.ok_or_else(|| {
            RegistryError::VersionNotFound(match v {
                VersionRef::Latest => "latest".into(),
                VersionRef::Number(n) => n.to_string(),
            })
        })?;
        let schema = self.schema_by_id(x.id)?.clone();
        Ok(Registered {
            subject: subject.to_string(),
            version: *n,
            id: x.id,
            schema,
            deleted: x.deleted,
        })
    }

    /// POST /subjects/{s}: the version of `subject` holding `schema`.
    pub fn lookup(
        &self,
        subject: &str,
        schema: &Schema,
        deleted: bool,
    ) -> RegistryResult<Registered> {
        let s = self.subject(subject, deleted)?;
        let canonical = schema.canonical()?;
        let id = self.by_canonical.get(&canonical).copied();
        let found = id.and_then(|id| {
            s.versions
                .iter()
                .rev()
                .find(|(_, v)| v.id == id && (deleted || !v.deleted))
        });
        let (n, v) = found.ok_or(RegistryError::SchemaNotInSubject)?;
        Ok(Registered {
            subject: subject.to_string(),
            version: *n,
            id: v.id,
            schema: schema.clone(),
            deleted: v.deleted,
        })
    }

    /// The level that applies to `subject` (its own, else the global one).
    pub fn compatibility(&self, subject: Option<&str>) -> Compatibility {
        subject
            .and_then(|s| self.subject_compat.get(s).copied())
            .or(self.global_compat)
            .unwrap_or(Compatibility::Backward)
    }

    /// GET /config/{s}: 40408 unless set, or with `default_to_global`.
    pub fn subject_config(
        &self,
        subject: &str,
        default_to_global: bool,
    ) -> RegistryResult<Compatibility> {
        match self.subject_compat.get(subject) {
            Some(c) => Ok(*c),
            None if default_to_global => Ok(self.compatibility(None)),
            None => Err(RegistryError::SubjectConfigNotFound(subject.to_string())),
        }
    }

    /// GET /mode/{s}: 40409 unless set, or with `default_to_global`.
    pub fn subject_mode(&self, subject: &str, default_to_global: bool) -> RegistryResult<Mode> {
        match self.subject_mode.get(subject) {
            Some(m) => Ok(*m),
            None if default_to_global => Ok(self.mode(None)),
            None => Err(RegistryError::SubjectModeNotFound(subject.to_string())),
        }
    }

    /// What broker-side validation needs: every id, and the ids of each
    /// subject's live versions.
    pub fn id_index(&self) -> IdIndex {
        let mut by_subject: HashMap<String, std::collections::HashSet<i32>> = HashMap::new();
        for (name, s) in &self.subjects {
            let ids: std::collections::HashSet<i32> = s.live().map(|(_, v)| v.id).collect();
            if !ids.is_empty() {
                by_subject.insert(name.clone(), ids);
            }
        }
        IdIndex {
            ids: self.schemas.keys().copied().collect(),
            by_subject,
        }
    }

    /// The highest id ever assigned.
    pub fn max_id(&self) -> i32 {
        self.max_id
    }

    pub fn mode(&self, subject: Option<&str>) -> Mode {
        subject
            .and_then(|s| self.subject_mode.get(s).copied())
            .or(self.global_mode)
            .unwrap_or(Mode::Readwrite)
    }

    /// Live versions a new schema must be compatible with, oldest first.
    fn compat_targets(&self, subject: &str, level: Compatibility) -> RegistryResult<Vec<Resolved>> {
        let Some(s) = self.subjects.get(subject) else {
            return Ok(Vec::new());
        };
        let live: Vec<&Schema> = s
            .live()
            .filter_map(|(_, v)| self.schemas.get(&v.id))
            .collect();
        let chosen = if level.transitive() {
            live
        } else {
            live.last().copied().into_iter().collect()
        };
        chosen.into_iter().map(|s| self.resolve(s)).collect()
    }

    /// `schema` with everything it references, transitively. A reference to
    /// a version that does not exist (or is soft-deleted) makes the schema
    /// invalid (42201), as in Confluent.
    pub fn resolve(&self, schema: &Schema) -> RegistryResult<Resolved> {
        let mut refs = Vec::new();
        let mut seen = std::collections::HashSet::new();
        self.resolve_into(schema, 0, &mut seen, &mut refs)?;
        Ok(Resolved {
            schema: schema.clone(),
            refs,
        })
    }

    fn resolve_into(
        &self,
        schema: &Schema,
        depth: usize,
        seen: &mut std::collections::HashSet<(String, i32)>,
        out: &mut Vec<(String, String)>,
    ) -> RegistryResult<()> {
        if depth > MAX_REFERENCE_DEPTH {
            return Err(RegistryError::InvalidSchema(format!(
                "references nest deeper than {MAX_REFERENCE_DEPTH}"
            )));
        }
        for r in &schema.references {
            if !seen.insert((r.subject.clone(), r.version)) {
                continue;
            }
            if seen.len() > MAX_REFERENCES {
                return Err(RegistryError::InvalidSchema(format!(
                    "more than {MAX_REFERENCES} references"
                )));
            }
            let target = self
                .version(&r.subject, VersionRef::Number(r.version), false)
                .map_err(|_| {
                    RegistryError::InvalidSchema(format!(
                        "reference {} to {} version {} does not exist",
                        r.name, r.subject, r.version
                    ))
                })?;
            self.resolve_into(&target.schema, depth.saturating_add(1), seen, out)?;
            out.push((r.name.clone(), target.schema.text.clone()));
        }
        Ok(())
    }

    /// The schema with its references resolved, or 42201 when it is not
    /// valid for its type.
    pub fn validate(
        &self,
        schema: &Schema,
        checker: &dyn CompatChecker,
    ) -> RegistryResult<Resolved> {
        schema.canonical()?;
        let resolved = self.resolve(schema)?;
        checker
            .validate(&resolved)
            .map_err(RegistryError::InvalidSchema)?;
        Ok(resolved)
    }

    /// POST /compatibility/subjects/{s}/versions[/{v}]: reasons `schema`
    /// is incompatible (empty: compatible).
    pub fn test_compatibility(
        &self,
        subject: &str,
        v: Option<VersionRef>,
        schema: &Schema,
        checker: &dyn CompatChecker,
    ) -> RegistryResult<Vec<String>> {
        let resolved = self.validate(schema, checker)?;
        let level = self.compatibility(Some(subject));
        if level == Compatibility::None {
            return Ok(Vec::new());
        }
        let targets: Vec<Resolved> = match v {
            Some(v) => vec![self.resolve(&self.version(subject, v, false)?.schema)?],
            None => self.compat_targets(subject, level)?,
        };
        Ok(checker.check(level, &resolved, &targets))
    }

    // ----- writes -----

    /// POST /subjects/{s}/versions. Returns the id, the version, and the
    /// records to write (none when the schema is already a live version of
    /// the subject).
    pub fn register(
        &mut self,
        subject: &str,
        schema: Schema,
        checker: &dyn CompatChecker,
    ) -> RegistryResult<(i32, i32, Vec<Record>)> {
        self.register_as(subject, schema, Imported::default(), checker)
    }

    /// Registration with an id and version chosen by the caller, which only
    /// IMPORT mode allows (Confluent's migration path): the id must be free
    /// or already hold this schema, the version unused; no compatibility
    /// check applies.
    pub fn register_as(
        &mut self,
        subject: &str,
        schema: Schema,
        imported: Imported,
        checker: &dyn CompatChecker,
    ) -> RegistryResult<(i32, i32, Vec<Record>)> {
        let mode = self.mode(Some(subject));
        if mode == Mode::Readonly {
            return Err(RegistryError::ReadOnly(subject.to_string()));
        }
        let importing = imported.id.is_some() || imported.version.is_some();
        if importing && mode != Mode::Import {
            return Err(RegistryError::NotPermitted(format!(
                "Subject {subject} is not in import mode"
            )));
        }
        let resolved = self.validate(&schema, checker)?;
        let canonical = schema.canonical()?;
        let existing_id = self.by_canonical.get(&canonical).copied();
        if let (Some(id), Some(s)) = (existing_id, self.subjects.get(subject)) {
            if let Some((v, _)) = s.live().find(|(_, v)| v.id == id) {
                if imported.id.is_none_or(|want| want == id)
                    && imported.version.is_none_or(|want| want == *v)
                {
                    return Ok((id, *v, Vec::new()));
                }
            }
        }
        let level = self.compatibility(Some(subject));
        if level != Compatibility::None && mode != Mode::Import {
            let details = checker.check(level, &resolved, &self.compat_targets(subject, level)?);
            if !details.is_empty() {
                return Err(RegistryError::Incompatible {
                    subject: subject.to_string(),
                    details,
                });
            }
        }
        let id = match imported.id {
            Some(want) if want < 1 => {
                return Err(RegistryError::NotPermitted(format!("Invalid id {want}")))
            }
            Some(want) => match self.schemas.get(&want) {
                Some(other) if other.canonical()? != canonical => {
                    return Err(RegistryError::NotPermitted(format!(
                        "Overwrite new schema with id {want} is not permitted."
                    )))
                }
                _ => want,
            },
            None => existing_id.unwrap_or(self.max_id.saturating_add(1)),
        };
        let next = self
            .subjects
            .get(subject)
            .map_or(0, |s| s.max_version)
            .saturating_add(1);
        let version = match imported.version {
            Some(want) if want < 1 => return Err(RegistryError::InvalidVersion(want.to_string())),
            Some(want)
                if self
                    .subjects
                    .get(subject)
                    .is_some_and(|s| s.versions.contains_key(&want)) =>
            {
                return Err(RegistryError::NotPermitted(format!(
                    "Version {want} of subject {subject} already exists"
                )))
            }
            Some(want) => want,
            None => next,
        };
        let rec = schema_record(subject, version, id, &schema, false, false);
        self.apply_schema(subject, version, id, schema, false, false, canonical);
        Ok((id, version, vec![rec]))
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_schema(
        &mut self,
        subject: &str,
        version: i32,
        id: i32,
        schema: Schema,
        deleted: bool,
        permanent: bool,
        canonical: String,
    ) {
        self.max_id = self.max_id.max(id);
        let s = self.subjects.entry(subject.to_string()).or_default();
        s.max_version = s.max_version.max(version);
        if permanent {
            s.versions.remove(&version);
        } else {
            s.versions.insert(version, Version { id, deleted });
        }
        // A subject whose last version is permanently deleted is gone, as
        // in Confluent: its name is free and numbering starts again at 1.
        if permanent && s.versions.is_empty() {
            self.subjects.remove(subject);
        }
        self.by_canonical.entry(canonical).or_insert(id);
        self.schemas.entry(id).or_insert(schema);
        if permanent {
            self.forget_unused(id);
        }
    }

    /// After a permanent delete: an id no version uses any more is gone.
    fn forget_unused(&mut self, id: i32) {
        let used = self
            .subjects
            .values()
            .any(|s| s.versions.values().any(|v| v.id == id));
        if !used {
            if let Some(schema) = self.schemas.remove(&id) {
                if let Ok(c) = schema.canonical() {
                    self.by_canonical.remove(&c);
                }
            }
        }
    }

    /// Versions whose schemas reference `subject` at `version`.
    pub fn referenced_by(&self, subject: &str, version: i32) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .subjects
            .values()
            .flat_map(|s| s.live().map(|(_, v)| v.id))
            .filter(|id| {
                self.schemas.get(id).is_some_and(|s| {
                    s.references
                        .iter()
                        .any(|r| r.subject == subject && r.version == version)
                })
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// DELETE /subjects/{s}/versions/{v}[?permanent=true].
    pub fn delete_version(
        &mut self,
        subject: &str,
        v: VersionRef,
        permanent: bool,
    ) -> RegistryResult<(i32, Vec<Record>)> {
        if self.mode(Some(subject)) == Mode::Readonly {
            return Err(RegistryError::ReadOnly(subject.to_string()));
        }
        // A numbered version is found even when soft-deleted, so that a
        // second soft delete gets 40406; `latest` means the latest live one
        // unless the delete is permanent.
        let r = self.version(subject, v, permanent || matches!(v, VersionRef::Number(_)))?;
        if !permanent && r.deleted {
            return Err(RegistryError::VersionSoftDeleted(r.version.to_string()));
        }
        if permanent && !r.deleted {
            return Err(RegistryError::VersionNotSoftDeleted(r.version.to_string()));
        }
        if !self.referenced_by(subject, r.version).is_empty() {
            return Err(RegistryError::ReferenceExists(r.id.to_string()));
        }
        let rec = schema_record(subject, r.version, r.id, &r.schema, true, permanent);
        let canonical = r.schema.canonical()?;
        self.apply_schema(
            subject, r.version, r.id, r.schema, true, permanent, canonical,
        );
        Ok((r.version, vec![rec]))
    }

    /// DELETE /subjects/{s}[?permanent=true]: the versions deleted.
    pub fn delete_subject(
        &mut self,
        subject: &str,
        permanent: bool,
    ) -> RegistryResult<(Vec<i32>, Vec<Record>)> {
        if self.mode(Some(subject)) == Mode::Readonly {
            return Err(RegistryError::ReadOnly(subject.to_string()));
        }
        let s = self.subject(subject, true)?;
        let any_live = s.live().next().is_some();
        if !permanent && !any_live {
            return Err(RegistryError::SubjectSoftDeleted(subject.to_string()));
        }
        if permanent && any_live {
            return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
        }
        let targets: Vec<i32> = s
            .versions
            .iter()
            .filter(|(_, v)| permanent || !v.deleted)
            .map(|(n, _)| *n)
            .collect();
        for n in &targets {
            if !self.referenced_by(subject, *n).is_empty() {
                return Err(RegistryError::ReferenceExists(n.to_string()));
            }
        }
        let mut recs = Vec::new();
        for n in &targets {
            let (_, mut r) = self.delete_version_unchecked(subject, *n, permanent)?;
            recs.append(&mut r);
        }
        if permanent {
            recs.extend(
                self.subject_compat
                    .remove(subject)
                    .map(|_| config_record(Some(subject), None)),
            );
            recs.extend(
                self.subject_mode
                    .remove(subject)
                    .map(|_| mode_record(Some(subject), None)),
            );
        }
        Ok((targets, recs))
    }

    fn delete_version_unchecked(
        &mut self,
        subject: &str,
        n: i32,
        permanent: bool,
    ) -> RegistryResult<(i32, Vec<Record>)> {
        let r = self.version(subject, VersionRef::Number(n), true)?;
        let rec = schema_record(subject, n, r.id, &r.schema, true, permanent);
        let canonical = r.schema.canonical()?;
        self.apply_schema(subject, n, r.id, r.schema, true, permanent, canonical);
        Ok((n, vec![rec]))
    }

    /// PUT /config[/{s}].
    pub fn set_config(&mut self, subject: Option<&str>, level: Compatibility) -> Vec<Record> {
        match subject {
            Some(s) => {
                self.subject_compat.insert(s.to_string(), level);
            }
            None => self.global_compat = Some(level),
        }
        vec![config_record(subject, Some(level))]
    }

    /// DELETE /config[/{s}]: the level that was in force.
    pub fn delete_config(
        &mut self,
        subject: Option<&str>,
    ) -> RegistryResult<(Compatibility, Vec<Record>)> {
        let old = match subject {
            Some(s) => self
                .subject_compat
                .remove(s)
                .ok_or_else(|| RegistryError::SubjectConfigNotFound(s.to_string()))?,
            None => self.global_compat.take().unwrap_or(Compatibility::Backward),
        };
        Ok((old, vec![config_record(subject, None)]))
    }

    /// PUT /mode[/{s}]. IMPORT needs an empty registry (or subject)
    /// unless `force`, as in Confluent.
    pub fn set_mode(
        &mut self,
        subject: Option<&str>,
        mode: Mode,
        force: bool,
    ) -> RegistryResult<Vec<Record>> {
        if mode == Mode::Import && !force {
            let busy = match subject {
                Some(s) => self.subjects.get(s).is_some_and(|x| !x.versions.is_empty()),
                None => self.subjects.values().any(|x| !x.versions.is_empty()),
            };
            if busy {
                return Err(RegistryError::NotPermitted(
                    "Cannot import since found existing subjects".into(),
                ));
            }
        }
        match subject {
            Some(s) => {
                self.subject_mode.insert(s.to_string(), mode);
            }
            None => self.global_mode = Some(mode),
        }
        Ok(vec![mode_record(subject, Some(mode))])
    }

    /// DELETE /mode[/{s}]: the mode that was in force.
    pub fn delete_mode(&mut self, subject: Option<&str>) -> (Mode, Vec<Record>) {
        let old = self.mode(subject);
        match subject {
            Some(s) => {
                self.subject_mode.remove(s);
            }
            None => self.global_mode = None,
        }
        (old, vec![mode_record(subject, None)])
    }

    // ----- replay -----

    /// Applies one `_schemas` record; false if it does not decode (skipped).
    pub fn replay(&mut self, key: &str, value: Option<&str>) -> bool {
        let Ok(k) = serde_json::from_str::<Key>(key) else {
            return false;
        };
        match (k.keytype.as_str(), value) {
            ("SCHEMA", Some(v)) => {
                let Ok(v) = serde_json::from_str::<SchemaValue>(v) else {
                    return false;
                };
                let Ok(schema_type) = SchemaType::parse(v.schema_type.as_deref()) else {
                    return false;
                };
                let schema = Schema {
                    schema_type,
                    text: v.schema,
                    references: v.references,
                };
                let Ok(canonical) = schema.canonical() else {
                    return false;
                };
                self.apply_schema(
                    &v.subject,
                    v.version,
                    v.id,
                    schema,
                    v.deleted,
                    v.permanent,
                    canonical,
                );
                true
            }
            ("SCHEMA", None) => {
                if let (Some(s), Some(n)) = (k.subject.as_deref(), k.version) {
                    if let Some(sub) = self.subjects.get_mut(s) {
                        if let Some(v) = sub.versions.remove(&n) {
                            self.forget_unused(v.id);
                        }
                    }
                }
                true
            }
            ("CONFIG", v) => {
                let level = match v.map(serde_json::from_str::<ConfigValue>) {
                    None => None,
                    Some(Ok(c)) => Some(c.compatibility_level),
                    Some(Err(_)) => return false,
                };
                match (k.subject, level) {
                    (Some(s), Some(l)) => {
                        self.subject_compat.insert(s, l);
                    }
                    (Some(s), None) => {
                        self.subject_compat.remove(&s);
                    }
                    (None, l) => self.global_compat = l,
                }
                true
            }
            ("MODE", v) => {
                let mode = match v.map(serde_json::from_str::<ModeValue>) {
                    None => None,
                    Some(Ok(m)) => Some(m.mode),
                    Some(Err(_)) => return false,
                };
                match (k.subject, mode) {
                    (Some(s), Some(m)) => {
                        self.subject_mode.insert(s, m);
                    }
                    (Some(s), None) => {
                        self.subject_mode.remove(&s);
                    }
                    (None, m) => self.global_mode = m,
                }
                true
            }
            // Confluent's NOOP and DELETE_SUBJECT keys carry nothing the
            // SCHEMA records do not already say.
            ("NOOP", _) | ("DELETE_SUBJECT", _) => true,
            _ => false,
        }
    }
}

fn schema_record(
    subject: &str,
    version: i32,
    id: i32,
    schema: &Schema,
    deleted: bool,
    permanent: bool,
) -> Record {
    let key = Key {
        keytype: "SCHEMA".into(),
        subject: Some(subject.to_string()),
        version: Some(version),
        magic: 1,
    };
    let value = SchemaValue {
        subject: subject.to_string(),
        version,
        id,
        schema: schema.text.clone(),
        schema_type: (schema.schema_type != SchemaType::Avro)
            .then(|| schema.schema_type.name().to_string()),
        references: schema.references.clone(),
        deleted,
        permanent,
    };
    Record {
        key: json(&key),
        value: Some(json(&value)),
    }
}

fn config_record(subject: Option<&str>, level: Option<Compatibility>) -> Record {
    let key = Key {
        keytype: "CONFIG".into(),
        subject: subject.map(str::to_string),
        version: None,
        magic: 0,
    };
    Record {
        key: json(&key),
        value: level.map(|l| {
            json(&ConfigValue {
                compatibility_level: l,
            })
        }),
    }
}

fn mode_record(subject: Option<&str>, mode: Option<Mode>) -> Record {
    let key = Key {
        keytype: "MODE".into(),
        subject: subject.map(str::to_string),
        version: None,
        magic: 0,
    };
    Record {
        key: json(&key),
        value: mode.map(|m| json(&ModeValue { mode: m })),
    }
}
