//! What an offline cluster CA needs whatever the distribution: a CA certificate's
//! parameters and reading a PEM block (kubeadm's PKI and K3s's CA both use them).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyUsagePurpose,
};

/// A CA's certificate as kubeadm makes one (`pkiutil.NewSelfSignedCACert`): the common
/// name, CA:TRUE, key usages digital signature, key encipherment and certificate signing,
/// ten years (kubeadm's `caCertificateValidityPeriod` default, 87600h).
///
/// Valid from 2000-01-01: a Raspberry Pi has no real-time clock, and until NTP answers its
/// clock may lie behind the day the card was prepared; kubeadm refuses a CA that is "not
/// valid yet" (`ValidateCertPeriod`).
pub(crate) fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    // 2000-01-01T00:00:00Z.
    params.not_before = time::OffsetDateTime::from_unix_timestamp(946_684_800)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    params
}

/// The DER bytes of the first PEM block labelled `label`.
pub(crate) fn pem_body(pem: &str, label: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let body: String = pem[start..stop].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}
