//! Prefix trie over the token sequences of item IDs: constrains generation
//! to valid items (Hugging Face's `prefix_allowed_tokens_fn`).

use std::collections::HashMap;

/// Token sequences (each ending with EOS) of a set of items.
#[derive(Debug, Clone, Default)]
pub struct ItemTrie {
    /// children[node] = (token -> child node)
    children: Vec<HashMap<u32, usize>>,
    /// item ending at node (after its EOS token)
    item: Vec<Option<u32>>,
}

impl ItemTrie {
    /// Builds the trie of `items` with their token sequences.
    pub fn new<'a>(items: impl IntoIterator<Item = (u32, &'a [u32])>) -> Self {
        let mut t = Self {
            children: vec![HashMap::new()],
            item: vec![None],
        };
        for (item, tokens) in items {
            let mut node = 0;
            for &tok in tokens {
                node = match t.children[node].get(&tok) {
                    Some(&c) => c,
                    None => {
                        t.children.push(HashMap::new());
                        t.item.push(None);
                        let c = t.children.len() - 1;
                        t.children[node].insert(tok, c);
                        c
                    }
                };
            }
            t.item[node] = Some(item);
        }
        t
    }

    fn walk(&self, prefix: &[u32]) -> Option<usize> {
        let mut node = 0;
        for tok in prefix {
            node = *self.children[node].get(tok)?;
        }
        Some(node)
    }

    /// Tokens that may follow `prefix` (sorted; empty if `prefix` leaves
    /// the trie or completes an item).
    pub fn allowed(&self, prefix: &[u32]) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .walk(prefix)
            .map(|n| self.children[n].keys().copied().collect())
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// The item whose full token sequence is `tokens`.
    pub fn item_of(&self, tokens: &[u32]) -> Option<u32> {
        self.walk(tokens).and_then(|n| self.item[n])
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.item.iter().flatten().count()
    }

    /// Whether the trie holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_prefixes_and_finds_items() {
        let seqs: Vec<(u32, Vec<u32>)> =
            vec![(7, vec![5, 6, 1]), (8, vec![5, 9, 1]), (9, vec![4, 1])];
        let t = ItemTrie::new(seqs.iter().map(|(i, s)| (*i, s.as_slice())));
        assert_eq!(t.allowed(&[]), vec![4, 5]);
        assert_eq!(t.allowed(&[5]), vec![6, 9]);
        assert_eq!(t.allowed(&[5, 6]), vec![1]);
        assert!(t.allowed(&[5, 6, 1]).is_empty());
        assert!(t.allowed(&[3]).is_empty());
        assert_eq!(t.item_of(&[5, 9, 1]), Some(8));
        assert_eq!(t.item_of(&[5, 9]), None);
        assert_eq!(t.len(), 3);
    }
}
