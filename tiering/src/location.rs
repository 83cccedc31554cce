//! Opening the store a `--tier-url` names.
//!
//! `file:///path`, `az://container/prefix` (also `azure://`, `abfs://` and
//! the https forms) and `s3://bucket/prefix` are parsed as `object_store`
//! parses URLs. Settings come from the environment, as each cloud's own
//! tools read them (`AWS_*`, `AZURE_*`: keys, endpoints,
//! `AZURE_STORAGE_USE_EMULATOR=true` for Azurite, `AWS_ALLOW_HTTP=true` for
//! a plain-HTTP S3 server), and from `options` given by the caller (a
//! config file), which win. A `file://` directory is created if missing.

use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::{TierError, TierResult};

/// A store and the prefix under which this broker's objects live.
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The URL with any credentials left out, for logs.
    pub display: String,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location")
            .field("url", &self.display)
            .finish()
    }
}

/// The environment's settings for a scheme's store, lower-cased as
/// `object_store` expects its config keys.
fn env_options(scheme: &str) -> Vec<(String, String)> {
    let wanted: &[&str] = match scheme {
        "s3" | "s3a" => &["AWS_"],
        "az" | "adl" | "azure" | "abfs" | "abfss" => &["AZURE_"],
        "https" | "http" => &["AWS_", "AZURE_"],
        _ => &[],
    };
    std::env::vars()
        .filter(|(k, _)| wanted.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// Opens the store `url` names.
pub fn open(url: &str, options: &[(String, String)]) -> TierResult<Location> {
    let bad = |why: String| TierError::Url {
        url: url.to_string(),
        why,
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let mut display = parsed.clone();
    let _ = display.set_password(None);
    let _ = display.set_username("");
    display.set_query(None);
    let (store, prefix): (Arc<dyn ObjectStore>, Path) = if parsed.scheme() == "file" {
        let dir = parsed
            .to_file_path()
            .map_err(|()| bad("not a local path".into()))?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| bad(format!("cannot create {}: {e}", dir.display())))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| bad(e.to_string()))?;
        (Arc::new(fs), Path::default())
    } else {
        let mut opts = env_options(parsed.scheme());
        opts.extend(options.iter().cloned());
        let (store, prefix) =
            object_store::parse_url_opts(&parsed, opts).map_err(|e| bad(e.to_string()))?;
        (Arc::from(store), prefix)
    };
    Ok(Location {
        store,
        prefix,
        display: display.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_directories_open_and_bad_urls_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("tier");
        let url = format!("file://{}", sub.display());
        let loc = open(&url, &[]).unwrap();
        assert!(sub.is_dir());
        assert_eq!(loc.prefix, Path::default());
        assert!(open("not a url", &[]).is_err());
        assert!(open("ftp://host/x", &[]).is_err());
    }

    #[cfg(feature = "cloud")]
    #[test]
    fn s3_url_keeps_its_prefix() {
        let s3 = open(
            "s3://bucket/some/prefix",
            &[
                ("aws_region".into(), "us-east-1".into()),
                ("aws_access_key_id".into(), "k".into()),
                ("aws_secret_access_key".into(), "s".into()),
            ],
        )
        .unwrap();
        assert_eq!(s3.prefix.as_ref(), "some/prefix");
    }
}
