//! Wi-Fi credentials in the forms each generation reads: the PBKDF2 PSK, a NetworkManager
//! keyfile (Bookworm), a wpa_supplicant.conf (Bullseye) and netplan (cloud-init, Trixie).

use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;

use super::WifiPlan;

/// The WPA PSK: PBKDF2-HMAC-SHA1(passphrase, SSID, 4096 rounds, 32 bytes), as 64 lowercase
/// hex digits. A passphrase that already is 64 hex digits is the PSK itself.
pub fn psk_hex(ssid: &str, passphrase: &str) -> SecretString {
    if passphrase.len() == 64 && passphrase.chars().all(|c| c.is_ascii_hexdigit()) {
        return SecretString::from(passphrase.to_ascii_lowercase());
    }
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha1>(passphrase.as_bytes(), ssid.as_bytes(), 4096, &mut key);
    SecretString::from(hex::encode(key))
}

/// The SSID as a NetworkManager keyfile value. Plain names stay readable; anything else is
/// written as NetworkManager's list of byte values (`ssid=72;105;`), which round-trips every
/// byte without relying on keyfile escaping.
fn nm_ssid(ssid: &str) -> String {
    let plain = ssid.chars().any(|c| c.is_ascii_alphabetic())
        && ssid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if plain {
        ssid.to_string()
    } else {
        ssid.bytes().map(|b| format!("{b};")).collect()
    }
}

/// A stable connection UUID for a node's network, so that preparing the same node twice gives
/// the same file.
pub(crate) fn connection_uuid(hostname: &str, ssid: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("pinode/{hostname}/wifi/{ssid}").as_bytes(),
    )
    .to_string()
}

/// `/etc/NetworkManager/system-connections/preconfigured.nmconnection`, as Imager names it.
pub(crate) fn nm_keyfile(wifi: &WifiPlan, uuid: &str) -> String {
    let hidden = if wifi.hidden { "hidden=true\n" } else { "" };
    format!(
        "[connection]\nid=preconfigured\nuuid={uuid}\ntype=wifi\n\n\
         [wifi]\nmode=infrastructure\nssid={ssid}\n{hidden}\n\
         [wifi-security]\nauth-alg=open\nkey-mgmt=wpa-psk\npsk={psk}\n\n\
         [ipv4]\nmethod=auto\n\n[ipv6]\naddr-gen-mode=default\nmethod=auto\n\n[proxy]\n",
        ssid = nm_ssid(&wifi.ssid),
        psk = wifi.psk_hex.expose_secret(),
    )
}

/// `/etc/wpa_supplicant/wpa_supplicant.conf` for Bullseye. The SSID is written as unquoted
/// hex, which wpa_supplicant accepts and which needs no escaping whatever the bytes.
pub(crate) fn wpa_supplicant_conf(wifi: &WifiPlan) -> String {
    let scan = if wifi.hidden { "\tscan_ssid=1\n" } else { "" };
    format!(
        "ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev\nupdate_config=1\ncountry={country}\n\n\
         network={{\n\tssid={ssid}\n{scan}\tpsk={psk}\n}}\n",
        country = wifi.country,
        ssid = hex::encode(wifi.ssid.as_bytes()),
        psk = wifi.psk_hex.expose_secret(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_matches_wpa_passphrase() {
        // Test vector from IEEE 802.11i-2004, Annex H.4.
        let psk = psk_hex("IEEE", "password");
        assert_eq!(
            psk.expose_secret(),
            "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
        );
        let raw = "A".repeat(64);
        assert_eq!(psk_hex("x", &raw).expose_secret(), "a".repeat(64));
    }

    #[test]
    fn ssid_forms() {
        assert_eq!(nm_ssid("HomeNet"), "HomeNet");
        assert_eq!(nm_ssid("a b"), "97;32;98;");
        assert_eq!(nm_ssid("123"), "49;50;51;");
        assert_eq!(nm_ssid("é"), "195;169;");
    }
}
