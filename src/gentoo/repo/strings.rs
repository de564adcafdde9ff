//! Interned strings: one arena and an open-addressing table of ids.
//!
//! The index holds ~70,000 distfile names and as many URL prefixes; a `String` each
//! would cost a heap block and a 24-byte header apiece. Here a string costs its bytes,
//! 8 bytes of span and about 8 bytes of table, and equal strings share one id. Strings
//! are never removed: the index rebuilds itself when too many are dead.

/// No id.
pub(crate) const NONE: u32 = u32::MAX;

#[derive(Debug, Default)]
pub(crate) struct Strings {
    arena: String,
    /// (offset, length) in `arena`, by id.
    spans: Vec<(u32, u32)>,
    /// Ids by hash, `NONE` when empty; its length is a power of two (or zero).
    table: Vec<u32>,
}

/// Makes room for `extra` more items in `v`, growing by an eighth rather than
/// doubling: the index is built once at its full size, and later syncs add little,
/// so doubling would leave megabytes of capacity that no update ever fills.
pub(crate) fn reserve_gently<T>(v: &mut Vec<T>, extra: usize) {
    if v.len() + extra > v.capacity() {
        v.reserve_exact(extra.max(v.capacity() / 8).max(1024));
    }
}

/// FNV-1a, 64 bits: short keys, no need for DoS resistance (the keys come from the
/// repository, not from clients; a client name is only looked up).
fn hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Strings {
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// The string with id `id` (empty for an unknown id).
    pub(crate) fn get(&self, id: u32) -> &str {
        match self.spans.get(id as usize) {
            Some(&(off, len)) => &self.arena[off as usize..(off + len) as usize],
            None => "",
        }
    }

    /// The id of `s`, if interned.
    pub(crate) fn find(&self, s: &str) -> Option<u32> {
        if self.table.is_empty() {
            return None;
        }
        let mask = self.table.len() - 1;
        let mut i = hash(s) as usize & mask;
        loop {
            let id = self.table[i];
            if id == NONE {
                return None;
            }
            if self.get(id) == s {
                return Some(id);
            }
            i = (i + 1) & mask;
        }
    }

    /// The id of `s`, interning it if new.
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.find(s) {
            return id;
        }
        if (self.spans.len() + 1) * 2 > self.table.len() {
            self.grow();
        }
        let id = self.spans.len() as u32;
        reserve_gently(&mut self.spans, 1);
        self.spans.push((self.arena.len() as u32, s.len() as u32));
        if self.arena.len() + s.len() > self.arena.capacity() {
            let extra = s.len().max(self.arena.capacity() / 8).max(16 * 1024);
            self.arena.reserve_exact(extra);
        }
        self.arena.push_str(s);
        self.place(id);
        id
    }

    fn place(&mut self, id: u32) {
        let mask = self.table.len() - 1;
        let mut i = hash(self.get(id)) as usize & mask;
        while self.table[i] != NONE {
            i = (i + 1) & mask;
        }
        self.table[i] = id;
    }

    fn grow(&mut self) {
        let size = (self.table.len() * 2).max(1024);
        self.table = vec![NONE; size];
        for id in 0..self.spans.len() as u32 {
            self.place(id);
        }
    }

    /// Releases spare capacity (after a build).
    pub(crate) fn shrink(&mut self) {
        self.arena.shrink_to_fit();
        self.spans.shrink_to_fit();
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.spans.capacity() * 8 + self.table.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_and_finds() {
        let mut s = Strings::default();
        assert_eq!(s.find("a"), None);
        let ids: Vec<u32> = (0..5000).map(|i| s.intern(&format!("name-{i}"))).collect();
        assert_eq!(s.intern("name-42"), ids[42], "equal strings share an id");
        assert_eq!(s.len(), 5000);
        assert_eq!(s.get(ids[4999]), "name-4999");
        assert_eq!(s.find("name-17"), Some(ids[17]));
        assert_eq!(s.find("name-5000"), None);
        assert_eq!(s.get(NONE), "");
        assert_eq!(s.intern(""), 5000);
        assert_eq!(s.find(""), Some(5000));
    }
}
