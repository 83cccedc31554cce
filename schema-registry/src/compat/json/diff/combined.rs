//! `allOf` / `anyOf` / `oneOf` against each other: the criterion may only
//! widen (an `allOf` may also become a `oneOf`), and the branches must pair up compatibly (a maximum matching
//! between original and updated branches must cover the smaller side).

use super::{all_compatible, Difference, Walker, TOO_COMPLEX};
use crate::compat::json::model::{Crit, Node};

/// The difference a change of criterion makes, if any.
fn criterion_change(from: Crit, from_len: usize, to: Crit, to_len: usize) -> Option<&'static str> {
    if from == to {
        return None;
    }
    let widened = match to {
        Crit::Any => true,
        Crit::One => from_len == 1 || from == Crit::All,
        Crit::All => from_len == 1 && to_len == 1,
    };
    Some(if widened {
        "COMBINED_TYPE_EXTENDED"
    } else {
        "COMBINED_TYPE_CHANGED"
    })
}

/// Branches with duplicates dropped (keeping the first).
fn distinct<'a>(nodes: Vec<Node<'a>>) -> Vec<Node<'a>> {
    let mut out: Vec<Node<'a>> = Vec::with_capacity(nodes.len());
    for n in nodes {
        if !out.iter().any(|k| k.facet == n.facet && k.value == n.value) {
            out.push(n);
        }
    }
    out
}

impl<'a> Walker<'a> {
    pub(super) fn combined(
        &mut self,
        ca: Crit,
        sa: Vec<Node<'a>>,
        cb: Crit,
        sb: Vec<Node<'a>>,
    ) -> Vec<Difference> {
        let mut out = Vec::new();
        if let Some(kind) = criterion_change(ca, sa.len(), cb, sb.len()) {
            out.push(self.at(kind));
            if kind == "COMBINED_TYPE_CHANGED" {
                return out;
            }
        }
        let (sa, sb) = (distinct(sa), distinct(sb));
        // Growth is named by the updated criterion, shrinking by the original.
        if sa.len() < sb.len() {
            out.push(self.at(if cb == Crit::All {
                "PRODUCT_TYPE_EXTENDED"
            } else {
                "SUM_TYPE_EXTENDED"
            }));
        } else if sa.len() > sb.len() {
            out.push(self.at(if ca == Crit::All {
                "PRODUCT_TYPE_NARROWED"
            } else {
                "SUM_TYPE_NARROWED"
            }));
        }
        if sa.len().saturating_mul(sb.len()) > self.budget {
            self.budget = 0;
            out.push(self.at(TOO_COMPLEX));
            return out;
        }
        let edges = self.compatible_pairs(ca, &sa, &sb);
        let adjacency: Vec<Vec<usize>> = edges
            .iter()
            .map(|row| row.iter().map(|(j, _)| *j).collect())
            .collect();
        let matching = max_matching(&adjacency, sb.len());
        for (i, j) in &matching {
            let diffs = edges
                .get(*i)
                .and_then(|row| row.iter().find(|(k, _)| k == j))
                .map(|(_, d)| d.clone());
            out.extend(diffs.into_iter().flatten());
        }
        if matching.len() < sa.len().min(sb.len()) {
            out.push(self.at("COMBINED_TYPE_SUBSCHEMAS_CHANGED"));
        }
        out
    }

    /// For each original branch, the updated branches it evolves into
    /// compatibly, with the differences found.
    fn compatible_pairs(
        &mut self,
        crit: Crit,
        sa: &[Node<'a>],
        sb: &[Node<'a>],
    ) -> Vec<Vec<(usize, Vec<Difference>)>> {
        let mut edges = Vec::with_capacity(sa.len());
        for (i, a) in sa.iter().enumerate() {
            let segment = format!("{}/{i}", crit.keyword());
            let row = self.within(&segment, |w| {
                let mut row = Vec::new();
                for (j, b) in sb.iter().enumerate() {
                    let found = w.compare(Some(*a), Some(*b));
                    if all_compatible(&found) {
                        row.push((j, found));
                    }
                }
                row
            });
            edges.push(row);
        }
        edges
    }
}

/// A maximum matching of a bipartite graph (Kuhn's augmenting paths):
/// `adjacency[i]` lists the right nodes left node `i` may pair with.
fn max_matching(adjacency: &[Vec<usize>], right: usize) -> Vec<(usize, usize)> {
    let mut owner: Vec<Option<usize>> = vec![None; right];
    for left in 0..adjacency.len() {
        let mut seen = vec![false; right];
        augment(adjacency, left, &mut seen, &mut owner);
    }
    owner
        .iter()
        .enumerate()
        .filter_map(|(j, i)| i.map(|i| (i, j)))
        .collect()
}

/// Recursion is bounded by the matching's size (at most the smaller side).
fn augment(
    adjacency: &[Vec<usize>],
    left: usize,
    seen: &mut [bool],
    owner: &mut [Option<usize>],
) -> bool {
    for &j in adjacency.get(left).into_iter().flatten() {
        match seen.get_mut(j) {
            Some(s) if !*s => *s = true,
            _ => continue,
        }
        let current = owner.get(j).copied().flatten();
        let free = match current {
            None => true,
            Some(other) => augment(adjacency, other, seen, owner),
        };
        if free {
            if let Some(slot) = owner.get_mut(j) {
                *slot = Some(left);
            }
            return true;
        }
    }
    false
}
