//! The ordered schema migrations. One file per step; each step runs in its own transaction
//! together with the update of `barnabee_meta`, so a crash leaves the database at a whole step.
//!
//! The compatibility contract (see `crate::schema`): every step states the oldest code version
//! (= schema version it was written for) that can still read *and* write the database after
//! it. An additive step (new table, new nullable column) keeps `min_reader` where it was, so
//! the previous generation keeps working after a rollback; a step that changes the meaning of
//! existing data raises it, and older binaries then refuse to start instead of corrupting data.

mod m0001_initial;
mod m0002_turn_embeddings;
#[cfg(feature = "test-schema-next")]
mod m0003_test_next;

/// One schema step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The schema version the database has after this step (1, 2, ...; no gaps).
    pub version: u32,
    /// The oldest code version that can use the database after this step.
    pub min_reader: u32,
    /// A short name for logs and snapshot reports.
    pub name: &'static str,
    /// SQL run inside the step's transaction.
    pub sql: &'static str,
}

/// Every migration this build knows, in order.
pub fn all() -> &'static [Migration] {
    ALL
}

#[cfg(not(feature = "test-schema-next"))]
const ALL: &[Migration] = &[m0001_initial::MIGRATION, m0002_turn_embeddings::MIGRATION];
#[cfg(feature = "test-schema-next")]
const ALL: &[Migration] = &[
    m0001_initial::MIGRATION,
    m0002_turn_embeddings::MIGRATION,
    m0003_test_next::MIGRATION,
];

/// The schema version this build writes.
pub fn code_version() -> u32 {
    ALL.last().map_or(0, |m| m.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dense_and_min_reader_never_exceeds_version() {
        for (i, m) in all().iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.name);
            assert!(m.min_reader >= 1 && m.min_reader <= m.version, "{}", m.name);
        }
        let mins: Vec<u32> = all().iter().map(|m| m.min_reader).collect();
        assert!(
            mins.windows(2).all(|w| w[0] <= w[1]),
            "min_reader must not decrease"
        );
    }
}
