//! The K3s cluster's CA material, generated offline so that every node can verify the
//! server it joins: agents and joining servers get the full `K10<CA hash>::server:<secret>`
//! token, and K3s refuses a server whose CA does not hash to it.
//!
//! The files are K3s's "custom CA certificates" (k3s-io/docs `docs/cli/certificate.md`,
//! "Using Custom CA Certificates"): found in /var/lib/rancher/k3s/server/tls at the first
//! start of the first server, they replace the CAs K3s would generate; the etcd ones are
//! required even without embedded etcd; `service.key` signs service-account tokens and has
//! no certificate. Joining servers receive the same material from the cluster
//! (k3s-io/k3s `pkg/cluster/bootstrap.go`, `httpBootstrap` writes it to disk), so the
//! copies pinode places on them are the cluster's own.
//!
//! Each CA is one self-signed certificate, as K3s's own CAs are ("Default CA Topology"),
//! not the root + intermediate chain of k3s-io/k3s `contrib/util/generate-custom-ca-certs.sh`:
//! for a single certificate every K3s release hashes the bytes of `server-ca.crt` as stored
//! (k3s-io/k3s `pkg/clientaccess/token.go`, `hashCA`; docs `docs/cli/token.md`, "Secure"),
//! where a bundle is hashed by its root's DER only in newer releases. Keys are ECDSA P-256,
//! the kind that script gives the leaf CAs; certificates as kubeadm's (see
//! [`crate::engine::offline_ca::ca_params`]: valid from 2000, for a Pi without a clock).

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::K3sError;
use crate::engine::offline_ca::{ca_params, pem_body};

/// K3s's server TLS directory, where the files go on a server before K3s first starts.
pub(crate) const TLS_DIR: &str = "/var/lib/rancher/k3s/server/tls";

/// One file of the CA material: its path under [`TLS_DIR`], and the flat name it has among
/// pinode's kept files and the node's secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CaPath {
    pub(crate) k3s: &'static str,
    pub(crate) name: &'static str,
}

const fn path(k3s: &'static str, name: &'static str) -> CaPath {
    CaPath { k3s, name }
}

/// Every file K3s requires, the server CA's certificate first (docs' list, in its order).
pub(crate) const FILES: [CaPath; 11] = [
    path("server-ca.crt", "server-ca.crt"),
    path("server-ca.key", "server-ca.key"),
    path("client-ca.crt", "client-ca.crt"),
    path("client-ca.key", "client-ca.key"),
    path("request-header-ca.crt", "request-header-ca.crt"),
    path("request-header-ca.key", "request-header-ca.key"),
    path("etcd/peer-ca.crt", "etcd-peer-ca.crt"),
    path("etcd/peer-ca.key", "etcd-peer-ca.key"),
    path("etcd/server-ca.crt", "etcd-server-ca.crt"),
    path("etcd/server-ca.key", "etcd-server-ca.key"),
    path("service.key", "service.key"),
];

/// One file with its contents (PEM). Certificates are public but travel with the keys, as
/// secrets, so that a server's card carries the set in one place.
#[derive(Debug, Clone)]
pub(crate) struct CaFile {
    pub(crate) path: CaPath,
    pub(crate) contents: SecretString,
}

/// Makes new CA material: every file of [`FILES`], in that order. The common names are
/// K3s's own (`k3s-server-ca`, …, as `generate-custom-ca-certs.sh` names them).
pub(crate) fn generate() -> Result<Vec<CaFile>, K3sError> {
    let fail = |what: &str, e: rcgen::Error| K3sError(format!("cannot make the {what}: {e}"));
    let mut files = Vec::new();
    for pair in FILES[..10].chunks(2) {
        let (cert, key) = (pair[0], pair[1]);
        let common_name = format!("k3s-{}", cert.name.trim_end_matches(".crt"));
        let keys =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| fail(cert.name, e))?;
        let issued = ca_params(&common_name)
            .self_signed(&keys)
            .map_err(|e| fail(cert.name, e))?;
        files.push(CaFile {
            path: cert,
            contents: SecretString::from(issued.pem()),
        });
        files.push(CaFile {
            path: key,
            contents: SecretString::from(keys.serialize_pem()),
        });
    }
    let service = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| fail("service account key", e))?;
    files.push(CaFile {
        path: FILES[10],
        contents: SecretString::from(service.serialize_pem()),
    });
    Ok(files)
}

/// The token's CA hash of this material: the lower-case hex SHA-256 of `server-ca.crt`'s
/// bytes, which is what a server serves at /cacerts. Refuses a certificate file holding more
/// than one certificate (K3s would hash its root instead, see the module's note) and a
/// server CA whose key is not its certificate's.
pub(crate) fn hash_of(files: &[CaFile]) -> Result<String, K3sError> {
    let find = |p: CaPath| {
        files
            .iter()
            .find(|f| f.path == p)
            .map(|f| f.contents.expose_secret())
            .ok_or_else(|| K3sError(format!("the CA material has no {}", p.name)))
    };
    let cert = find(FILES[0])?;
    if cert.matches("-----BEGIN CERTIFICATE-----").count() != 1 {
        return Err(K3sError(
            "server-ca.crt must hold exactly one certificate (pinode pins the bytes of a \
             single self-signed CA)"
                .into(),
        ));
    }
    let key = KeyPair::from_pem(find(FILES[1])?).map_err(|e| {
        K3sError(format!(
            "server-ca.key is not a private key pinode can read: {e}"
        ))
    })?;
    let spki = key.subject_public_key_info();
    let der = pem_body(cert, "CERTIFICATE")
        .ok_or_else(|| K3sError("server-ca.crt holds no PEM certificate".into()))?;
    // A certificate embeds its public key's SubjectPublicKeyInfo byte for byte.
    if !der.windows(spki.len()).any(|w| w == spki.as_slice()) {
        return Err(K3sError(
            "server-ca.crt does not carry server-ca.key's public key: the two do not belong \
             together"
                .into(),
        ));
    }
    Ok(hex::encode(Sha256::digest(cert.as_bytes())))
}

/// The full K3s token pinning `hash`, from the token the cluster uses (`token`, already
/// checked by [`super::check_cluster_token`]): a bare password becomes
/// `K10<hash>::server:<password>` (the form K3s writes to its own server token file), a
/// bootstrap token `K10<hash>::<token>`; a full token keeps its credentials and gets the
/// hash, and one carrying another hash is refused (it names a different CA).
///
/// K3s authenticates with the password part alone (`parseToken`: a bare token is a password
/// with an empty user), so the founder's datastore key and every joining node agree with
/// nodes that were given the bare token before.
pub(crate) fn pinned_token(token: &str, hash: &str) -> Result<String, String> {
    let creds = match token.strip_prefix("K10") {
        Some(rest) => {
            let (given, creds) = rest.split_once("::").unwrap_or(("", rest));
            if !given.is_empty() && given != hash {
                return Err(
                    "the cluster token is a full K3s token whose CA hash is not the hash of \
                     the cluster's kept CA (server-ca.crt): the nodes would refuse every \
                     server pinode prepares. Give the token without its K10<hash>:: prefix, \
                     or restore the CA it was made for into pinode's state directory"
                        .to_string(),
                );
            }
            creds.to_string()
        }
        None if super::is_bootstrap_token(token) => token.to_string(),
        None => format!("server:{token}"),
    };
    Ok(format!("K10{hash}::{creds}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_material_has_every_file_and_pins_the_server_ca_bytes() {
        let files = generate().unwrap();
        let names: Vec<_> = files.iter().map(|f| f.path.name).collect();
        let expected: Vec<_> = FILES.iter().map(|p| p.name).collect();
        assert_eq!(names, expected);
        let hash = hash_of(&files).unwrap();
        assert_eq!(
            hash,
            hex::encode(Sha256::digest(files[0].contents.expose_secret()))
        );
        for file in &files {
            let key = file.path.name.ends_with(".key");
            assert_eq!(file.contents.expose_secret().contains("PRIVATE KEY"), key);
        }
        let mut mixed = generate().unwrap();
        mixed[1] = files[1].clone();
        assert!(hash_of(&mixed).unwrap_err().0.contains("do not belong"));
    }

    #[test]
    fn tokens_get_the_hash_and_keep_their_credentials() {
        let h = "ab".repeat(32);
        let other = "cd".repeat(32);
        assert_eq!(
            pinned_token("secret-0123456789", &h).unwrap(),
            format!("K10{h}::server:secret-0123456789")
        );
        assert_eq!(
            pinned_token("abcdef.0123456789abcdef", &h).unwrap(),
            format!("K10{h}::abcdef.0123456789abcdef")
        );
        assert_eq!(
            pinned_token(&format!("K10{h}::server:x"), &h).unwrap(),
            format!("K10{h}::server:x")
        );
        assert_eq!(
            pinned_token("K10::server:x", &h).unwrap(),
            format!("K10{h}::server:x")
        );
        let err = pinned_token(&format!("K10{other}::server:x"), &h).unwrap_err();
        assert!(err.contains("kept CA") && !err.contains(&other), "{err}");
    }
}
