//! The order of `kd_records`' rows: the tree in pre-order.
//!
//! `akd`'s binary id of a tree node is `[2, label length (4 bytes, big
//! endian), label value (32 bytes)]`. As a row key that puts every node of
//! one label length together, so the nodes along one path from the root,
//! which an epoch changes together, each sat on a page of their own: at a
//! million accounts an epoch changed about 66,000 pages (230 MB of WAL) to
//! write 90,000 nodes. The row key moves the length after the value,
//! `[2, value, length]`. A label's value is its bits followed by zeros, so
//! keys sort in the tree's pre-order: a node's subtree is one run of keys
//! right after it, and the nodes of one path below a few levels share
//! pages. The mapping is a bijection on tree-node ids and the identity on
//! every other id, so no two records share a row; records carry their own
//! label, so nothing needs the id back.

/// `akd`'s type byte of a tree node's id.
const TREE_NODE: u8 = 2;
/// Length of a tree node's id: type, length, value.
const TREE_NODE_ID_LEN: usize = 37;

/// The row key of the record whose `akd` binary id is `id` (module docs).
pub(crate) fn row_key(id: Vec<u8>) -> Vec<u8> {
    match (id.first(), id.get(1..5), id.get(5..)) {
        (Some(&TREE_NODE), Some(length), Some(value)) if id.len() == TREE_NODE_ID_LEN => {
            let mut key = Vec::with_capacity(TREE_NODE_ID_LEN);
            key.push(TREE_NODE);
            key.extend_from_slice(value);
            key.extend_from_slice(length);
            key
        }
        _ => id,
    }
}

/// [`row_key`] as an SQL expression over a column `key` holding `akd`'s
/// ids: for moving rows written in `akd`'s order (a directory file of
/// version 0, or the service's database before schema 9). SQLite's `||`
/// makes text, which never equals a blob: the result is cast back.
pub const ROW_KEY_OF_AKD_ID: &str = "CASE WHEN length(key) = 37 AND substr(key, 1, 1) = X'02' \
     THEN CAST(X'02' || substr(key, 6, 32) || substr(key, 2, 4) AS BLOB) ELSE key END";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;
    use akd::NodeLabel;
    use akd::storage::Storable;
    use akd::tree_node::{NodeKey, TreeNodeWithPreviousValue};
    use proptest::prelude::*;

    fn id(label: NodeLabel) -> Vec<u8> {
        TreeNodeWithPreviousValue::get_full_binary_key_id(&NodeKey(label))
    }

    /// A prefix label: the first `len` bits of `bits`, the rest zero (as
    /// `akd` makes them).
    fn prefix(bits: [u8; 32], len: u32) -> NodeLabel {
        NodeLabel::new(bits, 256).get_prefix(len)
    }

    proptest! {
        /// Row keys sort in pre-order: a node's key comes before its
        /// descendants' and every descendant's key comes before that of any
        /// node outside its subtree that sorts after it; and distinct ids
        /// have distinct keys.
        #[test]
        fn keys_sort_in_pre_order(bits in any::<[u8; 32]>(), other in any::<[u8; 32]>(),
                                  a in 0u32..=256, b in 0u32..=256) {
            let (short, long) = (a.min(b), a.max(b));
            let ancestor = prefix(bits, short);
            let descendant = prefix(bits, long);
            prop_assert!(row_key(id(ancestor)) <= row_key(id(descendant)));
            if short < long {
                prop_assert!(row_key(id(ancestor)) < row_key(id(descendant)));
            }
            // A node outside the ancestor's subtree is before all of it or
            // after all of it.
            let outside = prefix(other, long);
            if !ancestor.is_prefix_of(&outside) {
                let before = row_key(id(outside)) < row_key(id(ancestor));
                prop_assert_eq!(before, row_key(id(outside)) < row_key(id(descendant)));
            }
            if id(ancestor) != id(outside) {
                prop_assert_ne!(row_key(id(ancestor)), row_key(id(outside)));
            }
        }
    }

    /// The SQL form maps as the Rust one does, to a blob (a row key bound
    /// as bytes finds it); other ids are unchanged.
    #[tokio::test]
    async fn the_sql_form_maps_as_row_key() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let ids = [
            id(prefix([0xa5; 32], 7)),
            id(prefix([0xff; 32], 256)),
            id(NodeLabel::root()),
            vec![1, 1],
            vec![4, 0, 0, 0, 0, 0, 0, 0, 9, b'a'],
        ];
        for id in ids {
            let sql = format!(
                "SELECT {ROW_KEY_OF_AKD_ID}, typeof({ROW_KEY_OF_AKD_ID}) FROM (SELECT ? AS key)"
            );
            let (got, kind): (Vec<u8>, String) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(&id)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(got, row_key(id));
            assert_eq!(kind, "blob");
        }
    }
}
