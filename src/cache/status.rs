//! How the cache answered a request: one value, decided in the cache, carried to the
//! `X-Cache` header, the access log and the metrics without being spelled anywhere else.

use std::fmt;

/// How a file was served. Spelled (`HIT`, `MISS`, …) only by [`CacheStatus::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheStatus {
    /// From a complete file on disk, without asking anyone.
    Hit,
    /// This request started the download (or, when nothing can be stored, fetched the
    /// file straight through, or asked a source for the headers of a `HEAD`).
    Miss,
    /// Joined a download another request started.
    Coalesced,
    /// A file that changes in place, confirmed current by a source (one conditional
    /// request, shared by every client asking meanwhile).
    Revalidated,
    /// Such a file could not be confirmed because every source failed, so the copy we
    /// have was served (RFC 9111 §4.2.4, stale-if-error).
    Stale,
}

impl CacheStatus {
    /// Every status, in the order metrics list them.
    pub const ALL: [CacheStatus; 5] = [
        CacheStatus::Hit,
        CacheStatus::Miss,
        CacheStatus::Coalesced,
        CacheStatus::Revalidated,
        CacheStatus::Stale,
    ];

    /// The `X-Cache` header value: `HIT`, `MISS`, `COALESCED`, `REVALIDATED`, `STALE`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Coalesced => "COALESCED",
            CacheStatus::Revalidated => "REVALIDATED",
            CacheStatus::Stale => "STALE",
        }
    }

    /// The metrics label: the same word in lower case (`hit`, `miss`, …).
    pub fn label(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Coalesced => "coalesced",
            CacheStatus::Revalidated => "revalidated",
            CacheStatus::Stale => "stale",
        }
    }

    /// Whether the bytes came from a complete file on our disk rather than from a
    /// transfer in progress.
    pub fn from_disk(self) -> bool {
        matches!(
            self,
            CacheStatus::Hit | CacheStatus::Revalidated | CacheStatus::Stale
        )
    }
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
