//! Wi-Fi credentials: the PBKDF2 PSK every form uses, and the wpa_supplicant.conf of Bullseye.
//! The NetworkManager keyfile (Bookworm) and netplan (Trixie) carry the node's addressing
//! too, so they are rendered with the other network files in `render::network`.

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
}
