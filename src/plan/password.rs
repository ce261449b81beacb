//! Password hashing for `password_env`: sha512-crypt (`$6$`), which every Raspberry Pi OS
//! release accepts (Imager uses yescrypt from 2023 on, but Bullseye's PAM predates it).

use sha_crypt::{Algorithm, CustomizedPasswordHasher, Params, ShaCrypt};

/// More than glibc's default of 5000: the hash sits on the card until first boot.
const ROUNDS: u32 = 100_000;

/// Hashes `password` with a fresh random salt.
pub fn sha512_crypt(password: &str) -> Result<String, String> {
    if password.contains(['\n', '\r', '\0']) {
        return Err("the password must not contain line breaks or NUL characters".into());
    }
    // 12 random bytes encode to the 16 salt characters sha512-crypt uses.
    let mut salt = [0u8; 12];
    let seed = crate::entropy::test_seed();
    crate::entropy::fill(&mut salt, "password-salt", seed.as_deref())
        .map_err(|e| format!("no randomness for the salt: {e}"))?;
    let params = Params::new(ROUNDS).map_err(|e| format!("password hashing: {e}"))?;
    let hasher = ShaCrypt::new(Algorithm::Sha512Crypt, params);
    hasher
        .hash_password_customized(password.as_bytes(), &salt, None, None, params)
        .map(|h| h.to_string())
        .map_err(|e| format!("password hashing: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produces_a_crypt_hash() {
        let hash = sha512_crypt("correct horse").unwrap();
        assert!(hash.starts_with("$6$rounds=100000$"), "{hash}");
        assert!(crate::profile::values::password_hash(&hash).is_ok());
        assert_ne!(
            hash,
            sha512_crypt("correct horse").unwrap(),
            "fresh salt each time"
        );
    }
}
