//! A small deterministic synthetic dataset with planted clusters, for fast
//! tests: users and items belong to clusters, and users mostly interact with
//! items of their own cluster, so graph propagation has structure to find.

use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, DatasetBuilder, ItemInfo, UserInfo};
use crate::error::{DataError, Result};
use crate::formats::Format;
use crate::read::LoadReport;
use crate::rng::{below, stream_rng, unit_f64};

/// Parameters of [`planted_clusters`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyntheticConfig {
    /// Number of users.
    pub users: usize,
    /// Number of items.
    pub items: usize,
    /// Number of clusters (users and items are assigned round-robin).
    pub clusters: usize,
    /// Distinct items per user.
    pub interactions_per_user: usize,
    /// Probability that an interaction stays in the user's cluster.
    pub in_cluster: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            users: 200,
            items: 120,
            clusters: 4,
            interactions_per_user: 12,
            in_cluster: 0.9,
            seed: 0,
        }
    }
}

/// A generated dataset with its ground truth.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// The dataset (ratings 1-5: 4-5 inside the cluster, 1-3 outside;
    /// timestamps increasing per user; item genre = `cluster<k>`).
    pub dataset: Dataset,
    /// Cluster of each dense user id.
    pub user_cluster: Vec<usize>,
    /// Cluster of each dense item id.
    pub item_cluster: Vec<usize>,
}

/// Generates a planted-cluster dataset. Raw ids are `1..=users` and
/// `1..=items`, so dense id = raw id - 1 and cluster = dense id % clusters.
///
/// # Errors
/// [`DataError::Config`] when a size is zero, `in_cluster` is outside
/// [0, 1], or a cluster has fewer items than `interactions_per_user`.
pub fn planted_clusters(cfg: &SyntheticConfig) -> Result<Synthetic> {
    let SyntheticConfig {
        users,
        items,
        clusters,
        interactions_per_user: k,
        in_cluster,
        seed,
    } = *cfg;
    if users == 0 || items == 0 || clusters == 0 || k == 0 {
        return Err(DataError::Config("synthetic sizes must be positive".into()));
    }
    if !(0.0..=1.0).contains(&in_cluster) {
        return Err(DataError::Config(format!(
            "in_cluster {in_cluster} outside [0, 1]"
        )));
    }
    if items / clusters < k || items < 2 * k {
        return Err(DataError::Config(format!(
            "{items} items in {clusters} clusters cannot give {k} distinct items per user"
        )));
    }
    let item_cluster: Vec<usize> = (0..items).map(|i| i % clusters).collect();
    let members: Vec<Vec<u32>> = (0..clusters)
        .map(|c| {
            (0..items as u32)
                .filter(|&i| i as usize % clusters == c)
                .collect()
        })
        .collect();
    let mut b = DatasetBuilder::default();
    for u in 0..users {
        let c = u % clusters;
        let mut rng = stream_rng(seed, u as u64);
        let mut chosen = std::collections::HashSet::new();
        let mut t = 1_000_000_000 + (u as i64) * 100;
        while chosen.len() < k {
            let inside = unit_f64(&mut rng) < in_cluster;
            let item = if inside {
                members[c][below(&mut rng, members[c].len() as u32) as usize]
            } else {
                below(&mut rng, items as u32)
            };
            if !chosen.insert(item) {
                continue;
            }
            let same = item as usize % clusters == c;
            let rating = if same {
                4 + below(&mut rng, 2)
            } else {
                1 + below(&mut rng, 3)
            };
            t += 1 + i64::from(below(&mut rng, 50));
            b.push(
                &(u + 1).to_string(),
                &(item + 1).to_string(),
                Some(rating as f32),
                Some(t),
            );
        }
        b.set_user(
            &(u + 1).to_string(),
            UserInfo {
                age: Some(18 + (u % 50) as u32),
                gender: Some(if u % 2 == 0 { "F" } else { "M" }.into()),
                occupation: Some(format!("occupation{}", c)),
                location: Some(format!("{:05}", 10_000 + u)),
                external_id: None,
            },
        );
    }
    for i in 0..items {
        b.set_item(
            &(i + 1).to_string(),
            ItemInfo {
                title: Some(format!("Item {} of cluster {}", i + 1, i % clusters)),
                genres: vec![format!("cluster{}", i % clusters)],
                author: None,
                year: Some(1990 + (i % 30) as i32),
                external_id: None,
            },
        );
    }
    let dataset = b.finish("synthetic".into(), Format::Synthetic, LoadReport::default());
    // Items that nobody drew are absent from the id map; recompute clusters from raw ids.
    let item_cluster = dataset
        .items
        .raw_ids()
        .iter()
        .map(|r| r.parse::<usize>().map(|x| item_cluster[x - 1]).unwrap_or(0))
        .collect();
    let user_cluster = (0..dataset.n_users()).map(|u| u % clusters).collect();
    Ok(Synthetic {
        dataset,
        user_cluster,
        item_cluster,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_clustered() {
        let cfg = SyntheticConfig::default();
        let a = planted_clusters(&cfg)
            .map(|s| s.dataset.interactions)
            .unwrap_or_default();
        let b = planted_clusters(&cfg)
            .map(|s| s.dataset.interactions)
            .unwrap_or_default();
        assert_eq!(a, b);
        assert_eq!(a.len(), cfg.users * cfg.interactions_per_user);
        let s = planted_clusters(&cfg).ok();
        let s = s.as_ref();
        let inside = a
            .iter()
            .filter(|x| {
                s.map(|s| s.user_cluster[x.user as usize] == s.item_cluster[x.item as usize])
                    .unwrap_or(false)
            })
            .count() as f64
            / a.len() as f64;
        assert!(inside > 0.85, "in-cluster share {inside}");
        assert!(planted_clusters(&SyntheticConfig { items: 10, ..cfg }).is_err());
    }
}
