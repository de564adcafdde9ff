//! `/distfiles/layout.conf`: the sources' own when a client reading it will ask for
//! paths we can map, else ours (GLEP 75).

use std::io::Read;

use log::debug;

use crate::cache::store::Key;
use crate::cache::store::Meta;
use crate::cache::{Answer, CacheStatus, Found, Slice};
use crate::gentoo::layout;
use crate::http::conditional;
use crate::http::{Body, Request, Response};

use super::respond::{representation, tag};

/// Largest `layout.conf` we read, in bytes.
const MAX_LAYOUT_CONF: u64 = 64 * 1024;

/// `GET /distfiles/layout.conf`: always 200. The sources' layout.conf when one has it
/// and a client reading it will ask for paths we can map; ours otherwise.
pub(super) fn layout_conf(req: &Request, key: &Key, answer: Answer) -> Response {
    if let Answer::Found(found) = answer
        && let Some((bytes, meta, status)) = read_small(found)
    {
        let text = String::from_utf8_lossy(&bytes);
        match layout::parse_structure(&text) {
            Ok(s) if layout::usable_by_us(&s) => {
                let rep = representation(key, &meta, bytes.len() as u64);
                let resp = conditional::answer(req, &rep, |start, n| {
                    Body::Bytes(bytes[start as usize..(start + n) as usize].to_vec())
                });
                return tag(resp, status);
            }
            Ok(s) => debug!(
                "the sources' layout.conf starts with {:?}; serving ours",
                s.first()
            ),
            Err(e) => debug!("the sources' layout.conf is unreadable ({e}); serving ours"),
        }
    }
    let ours = layout::render(&[layout::gentoo(), layout::Layout::Flat]);
    tag(
        Response::bytes("text/plain; charset=utf-8", ours),
        CacheStatus::Hit,
    )
}

/// The whole content of a small file (at most [`MAX_LAYOUT_CONF`] bytes are read).
fn read_small(found: Found) -> Option<(Vec<u8>, Meta, CacheStatus)> {
    let mut bytes = Vec::new();
    let read = match found.content.slice(0, found.meta.len) {
        Slice::File { file, offset, .. } => {
            use std::io::{Seek, SeekFrom};
            let mut file = file;
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.take(MAX_LAYOUT_CONF).read_to_end(&mut bytes))
        }
        Slice::Stream { reader, .. } => reader.take(MAX_LAYOUT_CONF).read_to_end(&mut bytes),
        Slice::Headers { .. } => Ok(0),
    };
    read.ok()?;
    Some((bytes, found.meta, found.status))
}
