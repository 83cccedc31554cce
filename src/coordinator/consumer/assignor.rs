//! KIP-848 server-side assignors: `uniform` (balanced and sticky: members
//! keep what they own up to their fair share) and `range` (per topic,
//! contiguous ranges in member-id order, as the client-side range
//! assignor). Both are pure functions of the members' subscriptions, the
//! topic image and the previous target.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Topic name → (id, partition count), for the subscribed topics that exist.
pub type Image = BTreeMap<String, (Uuid, i32)>;

pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// (member id, subscribed topic names), sorted by member id.
pub type Subscriptions = Vec<(String, Vec<String>)>;

pub fn assign(
    name: &str,
    members: &Subscriptions,
    image: &Image,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    match name {
        "range" => range(members, image),
        _ => uniform(members, image, previous),
    }
}

fn range(members: &Subscriptions, image: &Image) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|(m, _)| (m.clone(), Assignment::new()))
        .collect();
    for (topic, (id, count)) in image {
        let subs: Vec<&String> = members
            .iter()
            .filter(|(_, t)| t.contains(topic))
            .map(|(m, _)| m)
            .collect();
        let Ok(n) = usize::try_from(*count) else {
            continue;
        };
        if subs.is_empty() {
            continue;
        }
        let (per, extra) = (n / subs.len(), n % subs.len());
        let mut next = 0i32;
        for (i, m) in subs.iter().enumerate() {
            let len = per + usize::from(i < extra);
            let parts = out.entry((*m).clone()).or_default().entry(*id).or_default();
            for _ in 0..len {
                parts.insert(next);
                next += 1;
            }
        }
    }
    prune(out)
}

fn uniform(
    members: &Subscriptions,
    image: &Image,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|(m, _)| (m.clone(), Assignment::new()))
        .collect();
    let mut load: BTreeMap<&str, usize> = members.iter().map(|(m, _)| (m.as_str(), 0)).collect();
    // Every partition some member subscribes to, and who may take it.
    let mut all: Vec<(Uuid, i32, Vec<&str>)> = Vec::new();
    for (topic, (id, count)) in image {
        let subs: Vec<&str> = members
            .iter()
            .filter(|(_, t)| t.contains(topic))
            .map(|(m, _)| m.as_str())
            .collect();
        if subs.is_empty() {
            continue;
        }
        for p in 0..*count {
            all.push((*id, p, subs.clone()));
        }
    }
    let total = all.len();
    let fair = if members.is_empty() {
        0
    } else {
        total.div_ceil(members.len())
    };
    let mut rest = Vec::new();
    // Sticky pass: a partition stays with its previous owner while that
    // owner still subscribes and is under its fair share.
    for (id, p, subs) in all {
        let owner = previous
            .iter()
            .find(|(_, a)| a.get(&id).is_some_and(|s| s.contains(&p)))
            .map(|(m, _)| m.as_str())
            .filter(|m| subs.contains(m) && load.get(m).copied().unwrap_or(usize::MAX) < fair);
        match owner {
            Some(m) => {
                out.entry(m.to_string())
                    .or_default()
                    .entry(id)
                    .or_default()
                    .insert(p);
                if let Some(l) = load.get_mut(m) {
                    *l += 1;
                }
            }
            None => rest.push((id, p, subs)),
        }
    }
    for (id, p, subs) in rest {
        let Some(m) = subs
            .iter()
            .min_by_key(|m| (load.get(*m).copied().unwrap_or(usize::MAX), **m))
            .copied()
        else {
            continue;
        };
        out.entry(m.to_string())
            .or_default()
            .entry(id)
            .or_default()
            .insert(p);
        if let Some(l) = load.get_mut(m) {
            *l += 1;
        }
    }
    prune(out)
}

fn prune(mut out: BTreeMap<String, Assignment>) -> BTreeMap<String, Assignment> {
    for a in out.values_mut() {
        a.retain(|_, s| !s.is_empty());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(a: &BTreeMap<String, Assignment>, m: &str) -> usize {
        a.get(m)
            .map(|x| x.values().map(BTreeSet::len).sum())
            .unwrap_or(0)
    }

    #[test]
    fn range_and_uniform_cover_every_partition_once() {
        let t = Uuid::new_v4();
        let image = Image::from([("t".to_string(), (t, 7))]);
        let members: Subscriptions = vec![
            ("a".into(), vec!["t".into()]),
            ("b".into(), vec!["t".into()]),
            ("c".into(), vec!["t".into()]),
        ];
        for name in ASSIGNORS {
            let a = assign(name, &members, &image, &BTreeMap::new());
            let mut seen = BTreeSet::new();
            for m in ["a", "b", "c"] {
                assert!((2..=3).contains(&count(&a, m)), "{name}: {a:?}");
                for p in a.get(m).and_then(|x| x.get(&t)).into_iter().flatten() {
                    assert!(seen.insert(*p), "{name}: {p} twice");
                }
            }
            assert_eq!(seen.len(), 7);
        }
        let r = assign("range", &members, &image, &BTreeMap::new());
        assert_eq!(r["a"][&t], BTreeSet::from([0, 1, 2]));
    }

    #[test]
    fn uniform_is_sticky() {
        let t = Uuid::new_v4();
        let image = Image::from([("t".to_string(), (t, 6))]);
        let two: Subscriptions = vec![
            ("a".into(), vec!["t".into()]),
            ("b".into(), vec!["t".into()]),
        ];
        let first = assign("uniform", &two, &image, &BTreeMap::new());
        let mut three = two.clone();
        three.push(("c".into(), vec!["t".into()]));
        let second = assign("uniform", &three, &image, &first);
        for m in ["a", "b"] {
            let before = &first[m][&t];
            let after = &second[m][&t];
            assert!(after.is_subset(before), "{m} only gives up partitions");
            assert_eq!(after.len(), 2);
        }
        assert_eq!(count(&second, "c"), 2);
    }
}
