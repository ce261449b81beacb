//! Randomness for the values that differ by design on every run: the generated cluster
//! token, the cloud-init instance-id and password salts.
//!
//! Tests that compare prepared images byte for byte (tests/reproducible.rs) fix these
//! values with the test hook `PINODE_TEST_SEED` (honoured with `PINODE_TEST_HOOKS=1`): each value is then derived from the seed
//! and what it is for, so it does not depend on the order in which values are made. Never
//! set it for real cards: every card prepared with one seed shares its salts and tokens.

use sha2::{Digest, Sha256};

/// Fills `buf` with random bytes for `purpose` (a stable name, such as
/// `instance-id:HOSTNAME`), or with bytes derived from `seed` when a test fixed one.
pub(crate) fn fill(
    buf: &mut [u8],
    purpose: &str,
    seed: Option<&str>,
) -> Result<(), getrandom::Error> {
    match seed {
        Some(seed) => {
            derive(seed, purpose, buf);
            Ok(())
        }
        None => getrandom::fill(buf),
    }
}

/// SHA-256(seed ‖ 0 ‖ purpose ‖ 0 ‖ block number), block after block.
fn derive(seed: &str, purpose: &str, buf: &mut [u8]) {
    for (n, chunk) in buf.chunks_mut(32).enumerate() {
        let mut h = Sha256::new();
        h.update(seed.as_bytes());
        h.update([0]);
        h.update(purpose.as_bytes());
        h.update([0]);
        h.update((n as u64).to_be_bytes());
        let block = h.finalize();
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// The test hook `PINODE_TEST_SEED`, when set and not empty and test hooks are switched on
/// (`PINODE_TEST_HOOKS=1`, see [`crate::edge::TestHooks`]).
pub(crate) fn test_seed() -> Option<String> {
    crate::edge::settings().test.seed.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_fixes_each_purpose_independently() {
        let (mut a, mut b, mut c) = ([0u8; 40], [0u8; 40], [0u8; 40]);
        fill(&mut a, "salt", Some("1")).unwrap();
        fill(&mut b, "salt", Some("1")).unwrap();
        fill(&mut c, "instance-id:x", Some("1")).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut r = [0u8; 40];
        fill(&mut r, "salt", None).unwrap();
        assert_ne!(r, a);
    }
}
