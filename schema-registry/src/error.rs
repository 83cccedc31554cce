//! The registry's errors and the one place they become Confluent's error
//! codes and HTTP statuses (`{"error_code": …, "message": …}`).

/// Why a registry operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    #[error("Schema not found")]
    SchemaNotInSubject,
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Version {0} was soft deleted.Set permanent=true to delete permanently")]
    VersionSoftDeleted(String),
    #[error("Version {0} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    #[error("Subject '{0}' does not have subject-level mode configured")]
    SubjectModeNotFound(String),
    #[error("Invalid schema {0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibilityLevel,
    #[error("Invalid mode. Valid values are READWRITE, READONLY and IMPORT")]
    InvalidMode,
    #[error("Subject '{0}' is in read-only mode")]
    ReadOnly(String),
    #[error("{0}")]
    NotPermitted(String),
    #[error("One or more references exist to the schema {0}")]
    ReferenceExists(String),
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: {}", details.join("; "))]
    Incompatible {
        subject: String,
        details: Vec<String>,
    },
    #[error("Error in the backend data store: {0}")]
    Store(String),
}

impl RegistryError {
    /// Confluent's error code for the body.
    pub fn error_code(&self) -> u32 {
        match self {
            Self::SubjectNotFound(_) => 40401,
            Self::VersionNotFound(_) => 40402,
            Self::SchemaNotFound(_) | Self::SchemaNotInSubject => 40403,
            Self::SubjectSoftDeleted(_) => 40404,
            Self::SubjectNotSoftDeleted(_) => 40405,
            Self::VersionSoftDeleted(_) => 40406,
            Self::VersionNotSoftDeleted(_) => 40407,
            Self::SubjectConfigNotFound(_) => 40408,
            Self::SubjectModeNotFound(_) => 40409,
            Self::InvalidSchema(_) => 42201,
            Self::InvalidVersion(_) => 42202,
            Self::InvalidCompatibilityLevel => 42203,
            Self::InvalidMode => 42204,
            Self::ReadOnly(_) | Self::NotPermitted(_) => 42205,
            Self::ReferenceExists(_) => 42206,
            Self::Incompatible { .. } => 409,
            Self::Store(_) => 50001,
        }
    }

    /// The HTTP status that carries it.
    pub fn http_status(&self) -> u16 {
        match self.error_code() {
            409 => 409,
            c if c / 100 == 404 => 404,
            c if c / 100 == 422 => 422,
            _ => 500,
        }
    }
}

pub type RegistryResult<T> = Result<T, RegistryError>;
