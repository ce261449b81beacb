//! The cluster's PKI, generated offline the Talos way: pinode makes the cluster CA before
//! any node boots, so that a joining node can pin it by its hash (`caCertHashes`) and
//! nobody has to copy `kubeadm token create --print-join-command` from the first server.
//!
//! What is generated is what kubeadm's "manual certificate distribution" for HA needs on
//! every control-plane node (kubernetes/website,
//! `content/en/docs/setup/production-environment/tools/kubeadm/high-availability.md`,
//! "Manual certificate distribution"): the cluster CA (`ca.crt`, `ca.key`), the service
//! account signing key pair (`sa.key`, `sa.pub`), the front proxy CA and etcd's CA. kubeadm
//! finds them in /etc/kubernetes/pki and uses them instead of making its own; every other
//! certificate it signs on the node itself.
//!
//! Keys are ECDSA P-256, kubeadm's `encryptionAlgorithm: ECDSA-P256` (v1beta4
//! ClusterConfiguration), which pinode sets so that the certificates kubeadm signs on the
//! node use the same kind of key.
//!
//! The discovery hash is kubeadm's: `sha256:` and the hex SHA-256 of the CA certificate's
//! DER-encoded SubjectPublicKeyInfo (v1beta4 `BootstrapTokenDiscovery.caCertHashes`).

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::KubeadmError;
use crate::engine::offline_ca::{ca_params, pem_body};

/// One file of the PKI: its path under /etc/kubernetes/pki, the flat name it has among
/// pinode's kept files and the node's secrets, and whether it is a private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PkiPath {
    pub(crate) kubeadm: &'static str,
    pub(crate) name: &'static str,
    pub(crate) private: bool,
}

const fn path(kubeadm: &'static str, name: &'static str, private: bool) -> PkiPath {
    PkiPath {
        kubeadm,
        name,
        private,
    }
}

/// Every file of the PKI, the cluster CA's certificate first.
pub(crate) const FILES: [PkiPath; 8] = [
    path("ca.crt", "ca.crt", false),
    path("ca.key", "ca.key", true),
    path("sa.pub", "sa.pub", false),
    path("sa.key", "sa.key", true),
    path("front-proxy-ca.crt", "front-proxy-ca.crt", false),
    path("front-proxy-ca.key", "front-proxy-ca.key", true),
    path("etcd/ca.crt", "etcd-ca.crt", false),
    path("etcd/ca.key", "etcd-ca.key", true),
];

/// The cluster CA's certificate and key.
pub(crate) const CA_CERT: PkiPath = FILES[0];
pub(crate) const CA_KEY: PkiPath = FILES[1];

/// One file of the PKI with its contents (PEM). Certificates and public keys are public;
/// they are kept as secrets all the same, beside the keys, so that a server's card carries
/// them in one place.
#[derive(Debug, Clone)]
pub(crate) struct PkiFile {
    pub(crate) path: PkiPath,
    pub(crate) contents: SecretString,
}

/// The cluster's PKI as one node carries it: the CA's hash on every node; the files only on
/// servers (agents never see a key).
#[derive(Debug, Clone)]
pub(crate) struct ClusterPki {
    /// `sha256:<hex>`, kubeadm's `caCertHashes` form.
    pub(crate) ca_hash: String,
    pub(crate) files: Vec<PkiFile>,
}

/// Makes a new PKI: every file of [`FILES`], in that order.
pub(crate) fn generate() -> Result<Vec<PkiFile>, KubeadmError> {
    let fail = |what: &str, e: rcgen::Error| KubeadmError(format!("cannot make the {what}: {e}"));
    let mut files = Vec::new();
    for (cert, key, common_name) in [
        (FILES[0], FILES[1], "kubernetes"),
        (FILES[4], FILES[5], "front-proxy-ca"),
        (FILES[6], FILES[7], "etcd-ca"),
    ] {
        let pair =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| fail(cert.name, e))?;
        let issued = ca_params(common_name)
            .self_signed(&pair)
            .map_err(|e| fail(cert.name, e))?;
        files.push(PkiFile {
            path: cert,
            contents: SecretString::from(issued.pem()),
        });
        files.push(PkiFile {
            path: key,
            contents: SecretString::from(pair.serialize_pem()),
        });
    }
    let sa = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| fail("service account key", e))?;
    files.insert(
        2,
        PkiFile {
            path: FILES[2],
            contents: SecretString::from(sa.public_key_pem()),
        },
    );
    files.insert(
        3,
        PkiFile {
            path: FILES[3],
            contents: SecretString::from(sa.serialize_pem()),
        },
    );
    Ok(files)
}

/// kubeadm's discovery hash of the CA whose key is `ca_key` and certificate `ca_cert`
/// (both PEM): `sha256:` and the hex SHA-256 of the SubjectPublicKeyInfo. The certificate
/// must carry that public key (a certificate embeds its SPKI byte for byte), so a kept
/// certificate and key that do not belong together are refused here, not by kubeadm on the
/// node.
pub(crate) fn ca_hash(ca_cert: &str, ca_key: &str) -> Result<String, KubeadmError> {
    let pair = KeyPair::from_pem(ca_key)
        .map_err(|e| KubeadmError(format!("ca.key is not a private key pinode can read: {e}")))?;
    let spki = pair.subject_public_key_info();
    let der = pem_body(ca_cert, "CERTIFICATE")
        .ok_or_else(|| KubeadmError("ca.crt holds no PEM certificate".into()))?;
    if !der.windows(spki.len()).any(|w| w == spki.as_slice()) {
        return Err(KubeadmError(
            "ca.crt does not carry ca.key's public key: the two do not belong together".into(),
        ));
    }
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(&spki))))
}

/// The PKI's CA hash, from its files.
pub(crate) fn hash_of(files: &[PkiFile]) -> Result<String, KubeadmError> {
    let find = |p: PkiPath| {
        files
            .iter()
            .find(|f| f.path == p)
            .map(|f| f.contents.expose_secret())
            .ok_or_else(|| KubeadmError(format!("the PKI has no {}", p.name)))
    };
    ca_hash(find(CA_CERT)?, find(CA_KEY)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_pki_has_every_file_and_a_consistent_hash() {
        let files = generate().unwrap();
        let names: Vec<_> = files.iter().map(|f| f.path.name).collect();
        let expected: Vec<_> = FILES.iter().map(|p| p.name).collect();
        assert_eq!(names, expected);
        let hash = hash_of(&files).unwrap();
        assert!(
            hash.starts_with("sha256:") && hash.len() == 7 + 64,
            "{hash}"
        );
        for file in &files {
            let text = file.contents.expose_secret();
            assert_eq!(
                text.contains("PRIVATE KEY"),
                file.path.private,
                "{}",
                file.path.name
            );
        }
        // Another CA's key does not match this certificate.
        let other = generate().unwrap();
        let err = ca_hash(
            files[0].contents.expose_secret(),
            other[1].contents.expose_secret(),
        )
        .unwrap_err();
        assert!(err.0.contains("do not belong together"), "{err}");
    }
}
