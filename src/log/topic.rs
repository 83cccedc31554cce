//! A topic: its persisted metadata and its partitions.
//!
//! `<data>/.topics/<name>.json` holds the id, partition count, config
//! overrides and leader epoch, written atomically (temp, fsync, rename). It
//! is the source of truth for which topics exist: a partition directory with
//! no metadata file is an orphan of an interrupted create or delete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::config::LogConfig;
use super::partition::{write_atomic, Partition};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
    /// Leader epoch of every partition; persisted so it never goes back.
    pub leader_epoch: i32,
}

impl TopicMeta {
    pub fn path(meta_dir: &Path, name: &str) -> PathBuf {
        meta_dir.join(format!("{name}.json"))
    }

    pub fn save(&self, meta_dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(&Self::path(meta_dir, &self.name), &json)
    }

    pub fn load(path: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))
    }
}

pub struct Topic {
    pub name: String,
    pub id: Uuid,
    meta: RwLock<TopicMeta>,
    config: RwLock<Arc<LogConfig>>,
    partitions: RwLock<Arc<Vec<Arc<Partition>>>>,
}

fn read<T: Clone>(l: &RwLock<T>) -> T {
    l.read().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Topic {
    pub fn new(meta: TopicMeta, config: LogConfig, partitions: Vec<Arc<Partition>>) -> Self {
        Self {
            name: meta.name.clone(),
            id: meta.topic_id,
            meta: RwLock::new(meta),
            config: RwLock::new(Arc::new(config)),
            partitions: RwLock::new(Arc::new(partitions)),
        }
    }

    pub fn meta(&self) -> TopicMeta {
        read(&self.meta)
    }

    pub fn config(&self) -> Arc<LogConfig> {
        read(&self.config)
    }

    pub fn partitions(&self) -> Arc<Vec<Arc<Partition>>> {
        read(&self.partitions)
    }

    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions().get(i).cloned())
    }

    pub fn set_meta(&self, meta: TopicMeta, config: LogConfig) {
        *self.meta.write().unwrap_or_else(|p| p.into_inner()) = meta;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    pub fn add_partitions(&self, more: Vec<Arc<Partition>>) {
        let mut g = self.partitions.write().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<Arc<Partition>> = g.iter().cloned().collect();
        all.extend(more);
        *g = Arc::new(all);
    }
}
