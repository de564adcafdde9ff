//! Checking a file against its Manifest (or `Packages`) entry while it streams.
//!
//! Feed every byte to [`Verifier::update`] (or write to it: it is an `io::Write`) as
//! it arrives, then call [`Verifier::finish`]. BLAKE2b-512 is always computed (every
//! current Manifest lists it, and the caller may log the digest it got); SHA-512 and
//! SHA-1 only when the entry lists them, so a Manifest check costs BLAKE2B + SHA512,
//! a binhost check SHA1 (+ whatever else its `Packages` lists). The size is checked
//! first, then each listed digest in the order BLAKE2B, SHA512, SHA1; the first that
//! differs is the [`Mismatch`]. [`Verifier::overflowed`] tells as soon as more bytes
//! arrived than the entry's size, so a download can be cut short.

use std::fmt;
use std::io;

use blake2::{Blake2b512, Digest};
use sha1::Sha1;
use sha2::Sha512;

use super::digest::{Algo, BLAKE2B_LEN, Digests, to_hex};

/// What a file should be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// Its size in bytes, if known.
    pub size: Option<u64>,
    /// Its digests; any may be missing.
    pub digests: Digests,
}

impl Expected {
    /// The same entry with only the digests in `keep`, as portage's
    /// `PORTAGE_CHECKSUM_FILTER` does: checking BLAKE2B alone instead of BLAKE2B and
    /// SHA512 more than doubles the verifier's throughput (see
    /// `examples/repo_index_bench.rs`), and BLAKE2b-512 alone is a sound check. The
    /// size is always kept.
    pub fn filtered(mut self, keep: &[Algo]) -> Expected {
        if !keep.contains(&Algo::Blake2b) {
            self.digests.blake2b = None;
        }
        if !keep.contains(&Algo::Sha512) {
            self.digests.sha512 = None;
        }
        if !keep.contains(&Algo::Sha1) {
            self.digests.sha1 = None;
        }
        self
    }
}

/// How a file differed from its entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The byte count differs.
    Size {
        /// Bytes the entry promises.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
    /// A digest differs.
    Digest {
        /// Which one.
        algo: Algo,
        /// The entry's, in hex.
        expected: String,
        /// The file's, in hex.
        actual: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Size { expected, actual } => {
                write!(f, "size {actual} bytes, the entry says {expected}")
            }
            Mismatch::Digest {
                algo,
                expected,
                actual,
            } => write!(f, "{algo} {actual}, the entry says {expected}"),
        }
    }
}

impl std::error::Error for Mismatch {}

/// A file that matched its entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Bytes received.
    pub size: u64,
    /// The file's BLAKE2b-512.
    pub blake2b: [u8; BLAKE2B_LEN],
    /// The digests that were compared (empty when the entry lists none: then only
    /// the size, if known, was checked).
    pub checked: Vec<Algo>,
}

/// Digests a stream and compares it with an [`Expected`] entry at the end.
#[derive(Clone)]
pub struct Verifier {
    expected: Expected,
    len: u64,
    digests: DigestCheck,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("expected", &self.expected)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for a file that should match `expected`.
    pub fn new(expected: Expected) -> Verifier {
        Verifier {
            digests: DigestCheck::new(&expected.digests, true),
            len: 0,
            expected,
        }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        self.digests.update(bytes);
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no byte was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry this verifier checks against.
    pub fn expected(&self) -> &Expected {
        &self.expected
    }

    /// Whether more bytes than the entry's size were fed (the file is wrong already).
    pub fn overflowed(&self) -> bool {
        self.expected.size.is_some_and(|s| self.len > s)
    }

    /// Compares what was fed with the entry.
    pub fn finish(self) -> Result<Verified, Mismatch> {
        if let Some(expected) = self.expected.size
            && expected != self.len
        {
            return Err(Mismatch::Size {
                expected,
                actual: self.len,
            });
        }
        let mut checked = Vec::new();
        let mut blake2b = [0u8; BLAKE2B_LEN];
        for d in self.digests.finish()? {
            if d.compared {
                checked.push(d.algo);
            }
            if d.algo == Algo::Blake2b {
                blake2b.copy_from_slice(&d.value);
            }
        }
        Ok(Verified {
            size: self.len,
            blake2b,
            checked,
        })
    }
}

/// The digests an entry lists, computed while a file streams and compared at the end
/// in the order BLAKE2B, SHA512, SHA1; the first that differs is the [`Mismatch`].
/// The size is not its business: [`Verifier`] and the cache compare it themselves.
#[derive(Clone)]
pub(crate) struct DigestCheck(Vec<Part>);

/// One digest being computed, and the value the entry gives (none: computed only).
#[derive(Clone)]
struct Part {
    algo: Algo,
    hasher: Hasher,
    want: Option<Vec<u8>>,
}

#[derive(Clone)]
enum Hasher {
    Blake2b(Blake2b512),
    Sha512(Sha512),
    Sha1(Sha1),
}

/// A digest [`DigestCheck::finish`] computed.
pub(crate) struct Computed {
    pub(crate) algo: Algo,
    pub(crate) value: Vec<u8>,
    /// Whether the entry listed it (and it matched).
    pub(crate) compared: bool,
}

impl DigestCheck {
    /// A check of each digest `digests` lists; with `always_blake2b`, BLAKE2b-512 is
    /// computed even when not listed (to be reported).
    pub(crate) fn new(digests: &Digests, always_blake2b: bool) -> DigestCheck {
        let mut parts = Vec::new();
        if digests.blake2b.is_some() || always_blake2b {
            let want = digests.blake2b.map(|d| d.to_vec());
            parts.push(Part::new(Algo::Blake2b, want));
        }
        if let Some(want) = digests.sha512 {
            parts.push(Part::new(Algo::Sha512, Some(want.to_vec())));
        }
        if let Some(want) = digests.sha1 {
            parts.push(Part::new(Algo::Sha1, Some(want.to_vec())));
        }
        DigestCheck(parts)
    }

    /// Feeds the next bytes to every digest.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for p in &mut self.0 {
            match &mut p.hasher {
                Hasher::Blake2b(h) => h.update(bytes),
                Hasher::Sha512(h) => h.update(bytes),
                Hasher::Sha1(h) => h.update(bytes),
            }
        }
    }

    /// Compares each digest with the entry's. Errors: the first that differs.
    pub(crate) fn finish(self) -> Result<Vec<Computed>, Mismatch> {
        let mut out = Vec::with_capacity(self.0.len());
        for p in self.0 {
            let value = match p.hasher {
                Hasher::Blake2b(h) => h.finalize().to_vec(),
                Hasher::Sha512(h) => h.finalize().to_vec(),
                Hasher::Sha1(h) => h.finalize().to_vec(),
            };
            if let Some(want) = &p.want
                && *want != value
            {
                return Err(Mismatch::Digest {
                    algo: p.algo,
                    expected: to_hex(want),
                    actual: to_hex(&value),
                });
            }
            out.push(Computed {
                algo: p.algo,
                compared: p.want.is_some(),
                value,
            });
        }
        Ok(out)
    }

    /// The same check as one part per digest, to be fed in parallel; all must pass.
    pub(crate) fn split(self) -> Vec<DigestCheck> {
        self.0.into_iter().map(|p| DigestCheck(vec![p])).collect()
    }
}

impl Part {
    fn new(algo: Algo, want: Option<Vec<u8>>) -> Part {
        let hasher = match algo {
            Algo::Blake2b => Hasher::Blake2b(Blake2b512::new()),
            Algo::Sha512 => Hasher::Sha512(Sha512::new()),
            Algo::Sha1 => Hasher::Sha1(Sha1::new()),
        };
        Part { algo, hasher, want }
    }
}

impl io::Write for Verifier {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file and the entry a Manifest would list for it.
    fn entry(data: &[u8], with_sha512: bool, with_sha1: bool) -> Expected {
        let mut digests = Digests::default();
        let mut b = [0u8; 64];
        b.copy_from_slice(&Blake2b512::digest(data));
        digests.blake2b = Some(b);
        if with_sha512 {
            let mut s = [0u8; 64];
            s.copy_from_slice(&Sha512::digest(data));
            digests.sha512 = Some(s);
        }
        if with_sha1 {
            let mut s = [0u8; 20];
            s.copy_from_slice(&Sha1::digest(data));
            digests.sha1 = Some(s);
        }
        Expected {
            size: Some(data.len() as u64),
            digests,
        }
    }

    #[test]
    fn known_answers() {
        // BLAKE2b-512 and SHA-512 of "abc" (RFC 7693 appendix A, FIPS 180-2).
        let mut v = Verifier::new(Expected::default());
        v.update(b"abc");
        let ok = v.finish().unwrap();
        assert!(to_hex(&ok.blake2b).starts_with("ba80a53f981c4d0d6a2797b69f12f6e9"));
        assert!(ok.checked.is_empty());
        assert_eq!(
            to_hex(&Sha512::digest(b"abc"))[..32],
            *"ddaf35a193617abacc417349ae204131"
        );
        assert_eq!(
            to_hex(&Sha1::digest(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn matching_file_in_pieces() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut v = Verifier::new(entry(&data, true, true));
        for chunk in data.chunks(4093) {
            v.write_all(chunk).unwrap();
        }
        assert!(!v.overflowed());
        let ok = v.finish().unwrap();
        assert_eq!(ok.size, 100_000);
        assert_eq!(ok.checked, vec![Algo::Blake2b, Algo::Sha512, Algo::Sha1]);
    }

    #[test]
    fn mismatches_name_what_differed() {
        let data = b"the right bytes";
        let mut short = Verifier::new(entry(data, true, false));
        short.update(&data[..5]);
        assert_eq!(
            short.finish(),
            Err(Mismatch::Size {
                expected: 15,
                actual: 5
            })
        );

        let mut long = Verifier::new(entry(data, false, false));
        long.update(data);
        long.update(b"!");
        assert!(long.overflowed());

        let mut wrong = Verifier::new(entry(data, true, false));
        wrong.update(b"the wrong bytes");
        match wrong.finish() {
            Err(Mismatch::Digest {
                algo,
                expected,
                actual,
            }) => {
                assert_eq!(algo, Algo::Blake2b);
                assert_ne!(expected, actual);
            }
            other => panic!("{other:?}"),
        }

        // Only the SHA512 is wrong: the entry lied about one digest.
        let mut e = entry(data, true, false);
        e.digests.sha512 = Some([0; 64]);
        let mut v = Verifier::new(e);
        v.update(data);
        let err = v.finish().unwrap_err();
        assert!(matches!(
            err,
            Mismatch::Digest {
                algo: Algo::Sha512,
                ..
            }
        ));
        assert!(err.to_string().starts_with("SHA512 "), "{err}");

        // Filtered to BLAKE2B: the wrong SHA512 is not looked at.
        let mut e = entry(data, true, false);
        e.digests.sha512 = Some([0; 64]);
        let mut v = Verifier::new(e.filtered(&[Algo::Blake2b]));
        v.update(data);
        assert_eq!(v.finish().map(|ok| ok.checked), Ok(vec![Algo::Blake2b]));

        // A binhost entry: SIZE and SHA1 only.
        let mut e = entry(data, false, true);
        e.digests.blake2b = None;
        e.digests.sha1 = Some([1; 20]);
        let mut v = Verifier::new(e);
        v.update(data);
        assert!(matches!(
            v.finish(),
            Err(Mismatch::Digest {
                algo: Algo::Sha1,
                ..
            })
        ));
    }
}
