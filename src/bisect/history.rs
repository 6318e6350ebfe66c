//! Where a DAG bisection's ends and answer sit in the history: the release
//! tags a search without `--good` walks back over, and the merges a
//! culprit came in by.
//!
//! Invariant: pure functions of tags and of a [`Graph`]; no git, no cache.

use crate::git::Tag;
use crate::search::graph::Graph;

/// A release tag's version: `v6.8` is (6, 8, None), `v6.8.3` (6, 8, Some(3));
/// `None` for release candidates (`-rc`) and names that are no version.
fn version(name: &str) -> Option<(u64, u64, Option<u64>)> {
    let v = name.strip_prefix('v').unwrap_or(name);
    if v.contains("-rc") {
        return None;
    }
    let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = match parts.next() {
        None => None,
        Some(p) => Some(p?),
    };
    parts.next().is_none().then_some((major, minor, patch))
}

/// The tags to try as the good end, newest first, thinned as syzbot's
/// bisection does (syzkaller `pkg/bisect`, `pickReleaseTags`): the two
/// newest stable sub-releases (`vX.Y.Z`) above the newest release (plus
/// the middle one when there are more than five), then the releases
/// (`vX.Y`), every one of the first three, every second up to the
/// eleventh, every third after, and always the oldest. `-rc` tags are
/// never tried; tags that are no version count as releases, in commit
/// time order. `tags` come newest first.
pub fn release_tags(tags: Vec<Tag>) -> Vec<Tag> {
    let mut tags: Vec<Tag> = tags.into_iter().filter(|t| !t.name.contains("-rc")).collect();
    // Versions sort by number (v6.10 after v6.9); the rest keep time order.
    tags.sort_by(|a, b| match (version(&a.name), version(&b.name)) {
        (Some(va), Some(vb)) => vb.cmp(&va),
        _ => b.time.cmp(&a.time),
    });
    let first_release = tags
        .iter()
        .position(|t| !matches!(version(&t.name), Some((_, _, Some(_)))))
        .unwrap_or(tags.len());
    let (subs, releases) = tags.split_at(first_release);
    let mut picked: Vec<Tag> = subs.iter().take(2).cloned().collect();
    if subs.len() > 5 {
        picked.push(subs[subs.len() / 2].clone());
    }
    for (i, t) in releases.iter().enumerate() {
        let step = match i {
            0..=2 => 1,
            3..=10 => 2,
            _ => 3,
        };
        if i % step == 0 || i + 1 == releases.len() {
            picked.push(t.clone());
        }
    }
    picked
}

/// The merges `culprit` came into `tip` by: the merge on the tip's
/// first-parent line that brought it, then the merge on that branch's own
/// first-parent line, and so on inwards (empty when the culprit is on the
/// tip's first-parent line).
pub fn merge_path(graph: &Graph, culprit: usize, tip: usize) -> Vec<usize> {
    let mut path = Vec::new();
    let mut cur = tip;
    loop {
        // The oldest node of cur's first-parent line that has the culprit.
        let mut entry = cur;
        while let Some(&first) = graph.parents(entry).first() {
            if !graph.is_ancestor(culprit, first) {
                break;
            }
            entry = first;
        }
        if entry == culprit || !graph.is_ancestor(culprit, entry) {
            return path;
        }
        // entry is a merge whose first parent lacks the culprit: it came in
        // by another parent.
        path.push(entry);
        match graph.parents(entry)[1..]
            .iter()
            .find(|&&p| graph.is_ancestor(culprit, p))
        {
            Some(&p) => cur = p,
            None => return path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::CommitId;

    fn tag(name: &str, time: i64) -> Tag {
        Tag {
            name: name.into(),
            commit: CommitId::from("0000000000000000000000000000000000000000"),
            time,
        }
    }

    #[test]
    fn release_candidates_are_skipped_and_old_releases_thinned() {
        let mut tags = vec![tag("v6.9-rc2", 100), tag("v6.8.2", 99), tag("v6.8.1", 98)];
        for minor in (0..=8).rev() {
            tags.push(tag(&format!("v6.{minor}"), minor as i64));
        }
        for minor in (0..=19).rev() {
            tags.push(tag(&format!("v5.{minor}"), minor as i64 - 100));
        }
        let picked: Vec<String> = release_tags(tags).into_iter().map(|t| t.name).collect();
        assert_eq!(&picked[..5], ["v6.8.2", "v6.8.1", "v6.8", "v6.7", "v6.6"]);
        assert!(!picked.iter().any(|t| t.contains("-rc")));
        assert!(
            !picked.contains(&"v6.5".to_string()) && picked.contains(&"v6.4".to_string()),
            "every second release after the third: {picked:?}"
        );
        assert_eq!(picked.last().map(String::as_str), Some("v5.0"), "always the oldest");
        assert!(picked.len() < 20);
    }

    #[test]
    fn version_order_beats_name_order() {
        let picked: Vec<String> = release_tags(vec![tag("v6.9", 1), tag("v6.10", 2), tag("v6.11", 3)])
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(picked, ["v6.11", "v6.10", "v6.9"]);
    }

    #[test]
    fn merge_path_names_the_merges_inwards() {
        // 0 base; mainline 1, 2 (merge of 1 and 5), 3; branch 4 -> 5 (merge of
        // 4 and 6); inner branch 6 (the culprit) forked from 0.
        let parents = vec![
            vec![],
            vec![0],
            vec![0],
            vec![0],
            vec![3],
            vec![4, 2],
            vec![1, 5],
            vec![6],
        ];
        let graph = Graph::new(parents, vec![false, true, true, true, true, true, true, true]).unwrap();
        assert_eq!(merge_path(&graph, 2, 7), vec![6, 5]);
        assert_eq!(merge_path(&graph, 1, 7), Vec::<usize>::new());
        assert_eq!(merge_path(&graph, 4, 7), vec![6]);
        assert_eq!(merge_path(&graph, 6, 7), Vec::<usize>::new());
    }
}
