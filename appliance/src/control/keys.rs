//! The MN-HA key file: RFC 4285 shared keys by Mobility SPI.
//!
//! Keys live in their own file, not in the main configuration, so the configuration can be
//! shown, diffed and shared without exposing secrets. The file must be a regular file that
//! only its owner can read or write (mode `0600` or `0400`), owned by the user the
//! appliance runs as (or root). Format (TOML):
//!
//! ```toml
//! [[keys]]
//! spi = 256                                   # RFC 4285 §5: 0..=255 are reserved
//! key = "0123456789abcdef0123456789abcdef"    # hex, 16..=64 octets
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Deserialize;

/// Shortest key accepted: 128 bits.
pub const MIN_KEY_LEN: usize = 16;
/// Longest key accepted: HMAC-SHA1 hashes longer keys down to 20 octets anyway.
pub const MAX_KEY_LEN: usize = 64;
/// SPIs below this are reserved (RFC 4285 §5).
pub const FIRST_SPI: u32 = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    spi: u32,
    key: String,
}

/// The keys of a key file.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct KeyTable {
    pub keys: BTreeMap<u32, Vec<u8>>,
}

impl fmt::Debug for KeyTable {
    /// SPIs only: a key never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyTable")
            .field("spis", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a key file cannot be used; the message names the file and the entry.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct KeyFileError {
    pub path: String,
    pub reason: String,
}

impl KeyTable {
    /// Reads and checks the key file at `path` (permissions first, then contents).
    pub fn load(path: &Path) -> Result<KeyTable, KeyFileError> {
        let err = |reason: String| KeyFileError {
            path: path.display().to_string(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read: {e}")))?;
        if !meta.is_file() {
            return Err(err("is not a regular file".into()));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(err(format!(
                "mode {mode:04o} lets group or others access the keys; chmod 600 it"
            )));
        }
        // The owner must be root or our own user; `std` has no geteuid(), but the owner of
        // /proc/self is the process's effective uid.
        let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
        if meta.uid() != 0 && me.is_some_and(|uid| uid != meta.uid()) {
            return Err(err(format!(
                "is owned by uid {}, not by the appliance's user or root",
                meta.uid()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        KeyTable::parse(&text).map_err(err)
    }

    /// Parses key-file text (no permission checks).
    pub fn parse(text: &str) -> Result<KeyTable, String> {
        let file: KeyFile = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut keys = BTreeMap::new();
        for (i, entry) in file.keys.iter().enumerate() {
            let at = format!("keys[{i}]");
            if entry.spi < FIRST_SPI {
                return Err(format!(
                    "{at}.spi: {} is reserved (RFC 4285 §5: use {FIRST_SPI} or above)",
                    entry.spi
                ));
            }
            let key = decode_hex(&entry.key).map_err(|e| format!("{at}.key: {e}"))?;
            if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
                return Err(format!(
                    "{at}.key: {} octets; give {MIN_KEY_LEN}..={MAX_KEY_LEN}",
                    key.len()
                ));
            }
            if keys.insert(entry.spi, key).is_some() {
                return Err(format!("{at}.spi: {} appears twice", entry.spi));
            }
        }
        Ok(KeyTable { keys })
    }
}

fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !matches!(b, b':' | b' ' | b'-'))
        .collect();
    if digits.len() % 2 != 0 {
        return Err("an odd number of hex digits".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16);
            let lo = (pair[1] as char).to_digit(16);
            match (hi, lo) {
                (Some(h), Some(l)) => Ok((h * 16 + l) as u8),
                _ => Err("not hexadecimal".to_string()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const GOOD: &str = "[[keys]]\nspi = 256\nkey = \"00112233445566778899aabbccddeeff\"\n\
                        [[keys]]\nspi = 300\nkey = \"00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33\"\n";

    #[test]
    fn parses_keys() {
        let t = KeyTable::parse(GOOD).unwrap();
        assert_eq!(t.keys.len(), 2);
        assert_eq!(t.keys[&256][0..2], [0x00, 0x11]);
        assert_eq!(t.keys[&300].len(), 20);
        assert!(
            !format!("{t:?}").contains("0011"),
            "Debug shows no key material"
        );
    }

    #[test]
    fn rejects_bad_entries() {
        let cases = [
            (
                "[[keys]]\nspi = 255\nkey = \"00112233445566778899aabbccddeeff\"",
                "reserved",
            ),
            ("[[keys]]\nspi = 256\nkey = \"0011\"", "2 octets"),
            (
                "[[keys]]\nspi = 256\nkey = \"zz112233445566778899aabbccddeeff\"",
                "hex",
            ),
            (
                "[[keys]]\nspi = 256\nkey = \"0112233445566778899aabbccddeeff\"",
                "odd",
            ),
            (
                "[[keys]]\nspi = 256\nkey = \"00112233445566778899aabbccddeeff\"\n\
                 [[keys]]\nspi = 256\nkey = \"00112233445566778899aabbccddeeff\"",
                "twice",
            ),
            ("[[keys]]\nspi = 256\nsecret = \"00\"", "unknown field"),
        ];
        for (text, want) in cases {
            let e = KeyTable::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn refuses_readable_files() {
        let dir = std::env::temp_dir().join(format!("anycast6-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.toml");
        std::fs::write(&path, GOOD).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = KeyTable::load(&path).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(KeyTable::load(&path).unwrap().keys.len(), 2);
        let e = KeyTable::load(&dir.join("missing.toml")).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
