//! Dot-product scoring over user and item embedding tables.

use ndarray::{Array2, ArrayView2};

use crate::error::{BaselineError, Result};
use crate::scoring::ItemScorer;

/// Scores `score(u, i) = <user_vectors[u], item_vectors[i]>`, ignoring the
/// history (the user's node embedding already summarises the train graph).
///
/// The scorer behind [`RandomPropagation`](crate::RandomPropagation) and
/// [`LightGcnBpr`](crate::LightGcnBpr); usable on its own for any two
/// tables.
#[derive(Debug, Clone, PartialEq)]
pub struct DotScorer {
    name: String,
    users: Array2<f32>,
    items: Array2<f32>,
}

impl DotScorer {
    /// A scorer over `users` `(U, d)` and `items` `(I, d)`.
    ///
    /// # Errors
    /// [`BaselineError::Config`] if the two tables have different widths.
    pub fn new(name: impl Into<String>, users: Array2<f32>, items: Array2<f32>) -> Result<Self> {
        if users.ncols() != items.ncols() {
            return Err(BaselineError::Config(format!(
                "user vectors have {} columns, item vectors {}",
                users.ncols(),
                items.ncols()
            )));
        }
        Ok(Self {
            name: name.into(),
            users,
            items,
        })
    }

    /// Splits a propagated node table `(U + I, d)` (users first, as
    /// [`graft_graph::BipartiteGraph`] numbers nodes) into the two tables.
    ///
    /// # Errors
    /// [`BaselineError::Config`] if the table does not have `n_users + n_items` rows.
    pub fn from_node_table(
        name: impl Into<String>,
        table: Array2<f32>,
        n_users: usize,
        n_items: usize,
    ) -> Result<Self> {
        if table.nrows() != n_users + n_items {
            return Err(BaselineError::Config(format!(
                "node table has {} rows, expected {n_users} users + {n_items} items",
                table.nrows()
            )));
        }
        let users = table.slice(ndarray::s![..n_users, ..]).to_owned();
        let items = table.slice(ndarray::s![n_users.., ..]).to_owned();
        Self::new(name, users, items)
    }

    /// User vectors `(U, d)`.
    pub fn user_vectors(&self) -> ArrayView2<'_, f32> {
        self.users.view()
    }

    /// Item vectors `(I, d)`.
    pub fn item_vectors(&self) -> ArrayView2<'_, f32> {
        self.items.view()
    }

    /// Scores of the given items for `user`.
    ///
    /// # Errors
    /// [`BaselineError::IdOutOfRange`] for an unknown user or item.
    pub fn score_items(&self, user: u32, items: &[u32]) -> Result<Vec<f32>> {
        let u = self.user_row(user)?;
        items
            .iter()
            .map(|&i| {
                if i as usize >= self.items.nrows() {
                    return Err(BaselineError::IdOutOfRange {
                        kind: "item",
                        id: i,
                        n: self.items.nrows(),
                    });
                }
                Ok(self.items.row(i as usize).dot(&u))
            })
            .collect()
    }

    fn user_row(&self, user: u32) -> Result<ndarray::ArrayView1<'_, f32>> {
        if user as usize >= self.users.nrows() {
            return Err(BaselineError::IdOutOfRange {
                kind: "user",
                id: user,
                n: self.users.nrows(),
            });
        }
        Ok(self.users.row(user as usize))
    }
}

impl ItemScorer for DotScorer {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn score_all(&self, user: u32, _history: &[u32]) -> Result<Vec<f32>> {
        let u = self.user_row(user)?;
        Ok(self.items.dot(&u).to_vec())
    }
}

impl DotScorer {
    /// The name, user table and item table.
    pub fn into_parts(self) -> (String, Array2<f32>, Array2<f32>) {
        (self.name, self.users, self.items)
    }
}
