//! Digests as bytes: what a `Manifest` or a binhost `Packages` entry promises.
//!
//! Manifests (GLEP 74) write digests as lower-case hex; we keep the bytes (64 for
//! BLAKE2B and SHA512, 20 for SHA1), half the memory of the hex and directly
//! comparable with what a hasher returns. Hex is accepted in either case.

use std::fmt;

/// Bytes in a BLAKE2b-512 digest.
pub const BLAKE2B_LEN: usize = 64;
/// Bytes in a SHA-512 digest.
pub const SHA512_LEN: usize = 64;
/// Bytes in a SHA-1 digest.
pub const SHA1_LEN: usize = 20;

/// A digest algorithm we check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algo {
    /// BLAKE2b-512 (`BLAKE2B` in Manifests and `Packages`).
    Blake2b,
    /// SHA-512 (`SHA512`).
    Sha512,
    /// SHA-1 (`SHA1`, binhost `Packages` only).
    Sha1,
}

impl Algo {
    /// The name Manifests and `Packages` use.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Blake2b => "BLAKE2B",
            Algo::Sha512 => "SHA512",
            Algo::Sha1 => "SHA1",
        }
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The digests an entry promises; any of them may be missing.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Digests {
    /// BLAKE2b-512, the digest every current Gentoo Manifest carries.
    pub blake2b: Option<[u8; BLAKE2B_LEN]>,
    /// SHA-512, also in current Manifests.
    pub sha512: Option<[u8; SHA512_LEN]>,
    /// SHA-1, what a binhost `Packages` index gives (portage's `_pkgindex_hashes`).
    pub sha1: Option<[u8; SHA1_LEN]>,
}

impl Digests {
    /// Whether no digest is known.
    pub fn is_empty(&self) -> bool {
        self.blake2b.is_none() && self.sha512.is_none() && self.sha1.is_none()
    }

    /// Records the digest called `algo` (a Manifest or `Packages` name such as
    /// `BLAKE2B`) from its hex. Returns `Some(true)` if kept, `Some(false)` for a name
    /// we do not keep (`SHA256`, `MD5`, …), `None` for a kept name with malformed hex.
    pub fn set_hex(&mut self, algo: &str, hex: &str) -> Option<bool> {
        match algo {
            "BLAKE2B" => self.blake2b = Some(from_hex(hex)?),
            "SHA512" => self.sha512 = Some(from_hex(hex)?),
            "SHA1" => self.sha1 = Some(from_hex(hex)?),
            _ => return Some(false),
        }
        Some(true)
    }
}

impl fmt::Debug for Digests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Digests");
        if let Some(b) = &self.blake2b {
            d.field("blake2b", &to_hex(b));
        }
        if let Some(b) = &self.sha512 {
            d.field("sha512", &to_hex(b));
        }
        if let Some(b) = &self.sha1 {
            d.field("sha1", &to_hex(b));
        }
        d.finish()
    }
}

/// Decodes exactly `N` bytes of hex (either case); `None` for any other input.
pub fn from_hex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let hex = hex.as_bytes();
    if hex.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let bytes: [u8; 4] = from_hex("00fFa9").map_or([0; 4], |_: [u8; 3]| [1; 4]);
        assert_eq!(bytes, [1; 4], "three bytes decode");
        assert_eq!(from_hex::<3>("00ffa9"), Some([0, 255, 169]));
        assert_eq!(to_hex(&[0, 255, 169]), "00ffa9");
        assert_eq!(from_hex::<3>("00ffa"), None, "odd length");
        assert_eq!(from_hex::<3>("00ffa9aa"), None, "too long");
        assert_eq!(from_hex::<3>("00ffg9"), None, "not hex");
        assert_eq!(from_hex::<2>("é0"), None, "multi-byte characters");
    }

    #[test]
    fn set_hex_keeps_known_names_only() {
        let mut d = Digests::default();
        assert!(d.is_empty());
        assert_eq!(d.set_hex("SHA1", &"ab".repeat(20)), Some(true));
        assert_eq!(d.set_hex("SHA256", &"ab".repeat(32)), Some(false));
        assert_eq!(d.set_hex("BLAKE2B", "abc"), None);
        assert_eq!(d.sha1, Some([0xab; 20]));
        assert!(d.blake2b.is_none());
        assert!(format!("{d:?}").contains("abab"));
    }
}
