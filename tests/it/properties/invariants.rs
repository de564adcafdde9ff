//! The invariants of the parsers that see client or upstream input, written once and
//! checked twice: by the deterministic property tests (`tests/it/properties`, through
//! `mod invariants;`) and by the fuzz targets (`fuzz/fuzz_targets/*.rs`, through
//! `#[path = "../../tests/it/properties/invariants.rs"] mod invariants;`).
//!
//! Every `check_*` function panics, with a message naming the input, when an invariant
//! does not hold. `check_path`, `check_range`, `check_date`, `check_layout`,
//! `check_size` and `check_conditional` take raw bytes and are the whole body of the
//! fuzz target of the same name: they turn the bytes into that parser's inputs and run
//! the finer checks below them, which the property tests call on the inputs they
//! generate.
//!
//! It uses nothing from the test binary around it (no `crate::` or `super::` paths),
//! so that the fuzz targets can include it on its own.

// Each crate that includes this module uses only part of it.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use package_cache::gentoo::layout::{self, Algo, Layout};
use package_cache::http::conditional::{self, Outcome, Representation};
use package_cache::http::path::{self, MAX_PATH, MAX_SEGMENT, PathError};
use package_cache::http::range::{self, ByteRange, Selection};
use package_cache::http::{Body, Method, Request, date};
use package_cache::size;

// ---------------------------------------------------------------------------------
// Turning fuzzer bytes into inputs.

/// The little-endian u64 in the first 8 bytes of `bytes` (which has at least 8).
pub fn le_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

/// A representation length from a mode byte and a raw u64, so that tiny, ordinary and
/// huge (near `u64::MAX`) lengths are all common.
pub fn length_from(mode: u8, raw: u64) -> u64 {
    match mode % 4 {
        0 => raw % 16,
        1 => raw % 100_000,
        2 => u64::MAX - raw % 16,
        _ => raw,
    }
}

// ---------------------------------------------------------------------------------
// Request targets: `path::{parse_target, decode, encode, check}`.

/// Fuzz target `path`: every path function on the bytes as a (lossy) string.
pub fn check_path(data: &[u8]) {
    check_path_str(&String::from_utf8_lossy(data));
}

/// Every path function on `s`.
pub fn check_path_str(s: &str) {
    check_path_target(s);
    check_path_decode(s);
    check_path_encode(s);
    check_path_check(s);
}

/// `parse_target`: an accepted target has a safe path and a query taken from the
/// target, a refused one a client error; the absolute form (`http://host/…`) of an
/// origin-form target reduces to the same path.
pub fn check_path_target(target: &str) {
    match path::parse_target(target) {
        Ok(t) => {
            assert_safe_path(&t.path, target);
            if let Some(q) = &t.query {
                assert!(target.contains(q.as_str()), "{target:?} -> query {q:?}");
            }
        }
        Err(e) => check_path_error(&e),
    }
    if target.starts_with('/') {
        let absolute = format!("http://mirror.example:8080{target}");
        assert_eq!(
            path::parse_target(&absolute).map(|t| t.path),
            path::parse_target(target).map(|t| t.path),
            "{absolute:?}"
        );
    }
}

/// `decode`: never longer than its input, stable under `encode`, the identity without
/// escapes; a refusal is a client error.
pub fn check_path_decode(s: &str) {
    match path::decode(s) {
        Ok(d) => {
            assert!(d.len() <= s.len(), "{s:?} -> {d:?}");
            assert_eq!(
                path::decode(&path::encode(&d)).as_deref(),
                Ok(d.as_str()),
                "{s:?} -> {d:?}"
            );
            if !s.contains('%') {
                assert_eq!(d, s);
            }
        }
        Err(e) => check_path_error(&e),
    }
}

/// `encode` yields only unreserved characters, `/` and escapes, and `decode` inverts it
/// for any string, exactly once: an encoded escape stays an escape. Returns the
/// encoding.
pub fn check_path_encode(s: &str) -> String {
    let encoded = path::encode(s);
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b)),
        "{s:?} -> {encoded:?}"
    );
    assert_eq!(path::decode(&encoded).as_deref(), Ok(s), "{encoded:?}");
    let twice = path::encode(&encoded);
    assert_eq!(
        path::decode(&twice).as_deref(),
        Ok(encoded.as_str()),
        "{twice:?}"
    );
    encoded
}

/// `check`: what it accepts is safe, what it refuses is a client error.
pub fn check_path_check(s: &str) {
    match path::check(s) {
        Ok(()) => assert_safe_path(s, s),
        Err(e) => check_path_error(&e),
    }
}

/// What every accepted path must look like (the module's documented contract), and
/// that its canonical encoding leads back to it with nothing left to decode twice.
pub fn assert_safe_path(p: &str, input: &str) {
    assert!(p.starts_with('/'), "{input:?} -> {p:?}");
    assert!(p.len() <= MAX_PATH, "{input:?} -> {p:?}");
    assert!(
        !p.chars().any(|c| c == '\\' || c.is_control()),
        "{input:?} -> {p:?}"
    );
    if p != "/" {
        let inner = p[1..].strip_suffix('/').unwrap_or(&p[1..]);
        for seg in inner.split('/') {
            assert!(
                !seg.is_empty() && seg != "." && seg != ".." && seg.len() <= MAX_SEGMENT,
                "{input:?} -> {p:?}"
            );
        }
    }
    assert_eq!(path::check(p), Ok(()), "{input:?} -> {p:?}");
    let enc = path::encode(p);
    let again = path::parse_target(&enc)
        .unwrap_or_else(|e| panic!("{input:?} -> {p:?}: canonical form {enc:?}: {e}"));
    assert_eq!((again.path.as_str(), again.query), (p, None), "{enc:?}");
}

/// A refused path is a client error (400, or 414 for too long) that says why.
pub fn check_path_error(e: &PathError) {
    assert!(matches!(e.status(), 400 | 414), "{e:?}");
    assert!(!e.to_string().is_empty(), "{e:?} without a message");
}

// ---------------------------------------------------------------------------------
// Range: `range::{parse, select, content_range}`.

/// Fuzz target `range`: the first byte picks how the representation length is derived
/// from the next 8 (see [`length_from`]); the rest is the header. Inputs too short for
/// that are a header for a 10 000-byte representation.
pub fn check_range(data: &[u8]) {
    let (len, header) = match data {
        [mode, rest @ ..] if rest.len() >= 8 => (length_from(*mode, le_u64(rest)), &rest[8..]),
        _ => (10_000, data),
    };
    check_range_header(&String::from_utf8_lossy(header), len);
}

/// A header `parse` accepts has ranges, each `a-b` with `a <= b`, and selects as
/// [`check_selection`] says for a `len`-byte representation.
pub fn check_range_header(header: &str, len: u64) {
    let Some(ranges) = range::parse(header) else {
        return;
    };
    assert!(!ranges.is_empty(), "{header:?}");
    for r in &ranges {
        if let ByteRange::FromTo(a, b) = r {
            assert!(a <= b, "{header:?}");
        }
    }
    check_selection(&ranges, len);
}

/// The bytes `[start, end)` a range covers in a `len`-byte representation, computed
/// independently in u128 (no overflow possible).
pub fn range_model(r: ByteRange, len: u64) -> Option<(u128, u128)> {
    let len = u128::from(len);
    let (start, end) = match r {
        ByteRange::FromTo(a, b) => (u128::from(a), (u128::from(b) + 1).min(len)),
        ByteRange::From(a) => (u128::from(a), len),
        ByteRange::Suffix(n) => (len.saturating_sub(u128::from(n)), len),
    };
    (start < end).then_some((start, end))
}

/// `select` agrees with [`range_model`]: the whole file for several satisfiable
/// ranges, 416 for none, and for one exactly its bytes, inside the file, with an
/// inclusive `Content-Range`.
pub fn check_selection(ranges: &[ByteRange], len: u64) {
    let satisfiable: Vec<(u128, u128)> =
        ranges.iter().filter_map(|r| range_model(*r, len)).collect();
    match range::select(ranges, len) {
        Selection::Full => assert!(satisfiable.len() > 1, "{ranges:?} {len}"),
        Selection::Unsatisfiable => assert!(satisfiable.is_empty(), "{ranges:?} {len}"),
        Selection::Partial { start, len: n } => {
            assert_eq!(satisfiable.len(), 1, "{ranges:?} {len}");
            assert!(n >= 1, "{ranges:?} {len}");
            let end = start
                .checked_add(n)
                .unwrap_or_else(|| panic!("{ranges:?} {len}: end of {start}+{n} overflows"));
            assert!(end <= len, "{ranges:?}: {start}+{n} > {len}");
            assert_eq!(
                satisfiable[0],
                (u128::from(start), u128::from(end)),
                "{ranges:?} {len}"
            );
            assert_eq!(
                range::content_range(start, n, len),
                format!("bytes {start}-{}/{len}", end - 1),
                "{ranges:?} {len}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------
// HTTP dates: `date::{parse, format, format_rfc3339, unix_seconds}`.

/// 9999-12-31T23:59:59Z, the last second `date::parse` accepts.
pub const MAX_DATE_SECS: u64 = 253_402_300_799;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Fuzz target `date`: the first 8 bytes as a number of seconds (as is, and reduced to
/// the range `parse` accepts), and the whole input as a date.
pub fn check_date(data: &[u8]) {
    if data.len() >= 8 {
        let secs = le_u64(data);
        check_date_secs(secs);
        check_date_secs(secs % (MAX_DATE_SECS + 1));
    }
    check_date_text(&String::from_utf8_lossy(data));
}

/// Any number of seconds formats without panicking, and what `format` prints parses
/// back to the same second exactly when it is at most [`MAX_DATE_SECS`].
pub fn check_date_secs(secs: u64) {
    let Some(t) = UNIX_EPOCH.checked_add(Duration::from_secs(secs)) else {
        return;
    };
    let imf = date::format(t);
    let _ = date::format_rfc3339(t);
    let want = (secs <= MAX_DATE_SECS).then_some(t);
    assert_eq!(date::parse(&imf), want, "{secs} {imf:?}");
}

/// A date `parse` accepts passes [`check_date_accepted`].
pub fn check_date_text(text: &str) {
    if let Some(t) = date::parse(text) {
        check_date_accepted(text, t);
    }
}

/// What `parse` accepted is whole seconds up to the year 9999, formats and parses back
/// to the same second, and is what the text says: its hours and minutes (a leap second
/// only changes the seconds) and its month name are in the text.
pub fn check_date_accepted(text: &str, t: SystemTime) {
    let secs = date::unix_seconds(t);
    assert_eq!(
        t,
        UNIX_EPOCH + Duration::from_secs(secs),
        "{text:?}: whole seconds"
    );
    assert!(secs <= MAX_DATE_SECS, "{text:?}");
    let out = date::format(t);
    assert_eq!(date::parse(&out), Some(t), "{text:?} -> {out:?}");
    let hhmm = &out[17..23]; // "08:49:" in "Sun, 06 Nov 1994 08:49:37 GMT"
    assert!(text.contains(hhmm), "{text:?} read as {out:?}");
    let month = &out[8..11];
    assert!(
        text.to_ascii_lowercase()
            .contains(&month.to_ascii_lowercase()),
        "{text:?} read as {out:?}"
    );
    assert!(MONTHS.contains(&month), "{out:?}");
}

// ---------------------------------------------------------------------------------
// GLEP 75 layouts: `layout::{parse_structure, best, portage_choice, usable_by_us,
// render, dirs_match}` and `Layout::{parse_entry, path, dirs}`.

/// Names every layout is checked against.
pub const NAMES: [&str; 3] = ["MooseX-OneArgNew-0.007.tar.gz", "foo+bar 1%.tar.gz", "x"];

/// Fuzz target `layout`: the whole input as one `[structure]` value and as a
/// `layout.conf`; then as a request's directories (the last line is the name, up to 8
/// lines before it the directories).
pub fn check_layout(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_layout_entry(&text);
    if let Ok(values) = layout::parse_structure(&text) {
        check_structure(&text, &values);
    }
    let mut lines: Vec<&str> = text.split('\n').collect();
    let name = lines.pop().unwrap_or("");
    check_dirs(name, &lines[..lines.len().min(8)]);
}

/// A `[structure]` value `parse_entry` accepts passes [`check_layout_maps`] for every
/// name in [`NAMES`].
pub fn check_layout_entry(text: &str) {
    if let Some(l) = Layout::parse_entry(text) {
        for name in NAMES {
            check_layout_maps(&l, name);
        }
    }
}

/// A usable layout maps `name` to `dirs/name`, with one directory per cutoff of
/// `cutoff / 4` lower-case digest digits that `dirs_match` accepts, and its entry and
/// `layout.conf` read back as itself. Returns the directories.
pub fn check_layout_maps(l: &Layout, name: &str) -> Vec<String> {
    let dirs = l.dirs(name);
    let path = l.path(name);
    assert_eq!(path, format!("{dirs}{name}"), "{l} {name:?}");
    assert!(path.ends_with(name), "{l} {name:?}: {path:?}");
    let parts: Vec<String> = match dirs.strip_suffix('/') {
        Some(d) => d.split('/').map(str::to_owned).collect(),
        None => {
            assert!(dirs.is_empty(), "{l} {name:?}: {dirs:?}");
            Vec::new()
        }
    };
    match l {
        Layout::Flat => assert!(dirs.is_empty() && parts.is_empty(), "{name:?}: {dirs:?}"),
        Layout::FilenameHash { algo, cutoffs } => {
            assert!(!cutoffs.is_empty(), "{l}");
            assert!(cutoffs.iter().all(|c| *c > 0 && c % 4 == 0), "{l}");
            assert!(
                cutoffs.iter().map(|&c| u64::from(c)).sum::<u64>() <= u64::from(algo.bits()),
                "{l}"
            );
            assert_eq!(parts.len(), cutoffs.len(), "{l} {name:?}");
            for (p, c) in parts.iter().zip(cutoffs) {
                assert_eq!(p.len() * 4, *c as usize, "{l} {name:?}");
            }
            assert!(
                algo.hex(name.as_bytes()).starts_with(&parts.concat()),
                "{l} {name:?}: {parts:?}"
            );
        }
    }
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    assert!(layout::dirs_match(name, &refs), "{l} {name:?}: {refs:?}");
    assert_eq!(Layout::parse_entry(&l.to_string()).as_ref(), Some(l));
    let rendered = layout::render(std::slice::from_ref(l));
    let structure = layout::parse_structure(&rendered).expect("render parses");
    assert_eq!(layout::best(&structure), *l, "{rendered:?}");
    assert!(layout::usable_by_us(&structure), "{rendered:?}");
    parts
}

/// The `[structure]` values `parse_structure` read from `text` are consistent: the
/// best layout is the first usable one (or flat) and maps names, portage's choice is
/// one of the values and agrees with ours when we can use the file, and the usable
/// layouts render and read back as themselves.
pub fn check_structure(text: &str, values: &[String]) {
    let best = layout::best(values);
    check_layout_maps(&best, values.last().map_or("x", String::as_str));
    check_layout_maps(&best, NAMES[0]);
    if let Some(choice) = layout::portage_choice(values) {
        assert!(values.iter().any(|v| v == choice), "{text:?}: {choice:?}");
    }
    if layout::usable_by_us(values) {
        // We agree with portage on the layout it will use.
        match layout::portage_choice(values) {
            Some(choice) => assert_eq!(
                Layout::parse_entry(choice).as_ref(),
                Some(&best),
                "{text:?}"
            ),
            None => assert_eq!(best, Layout::Flat, "{text:?}"),
        }
    }
    let usable: Vec<Layout> = values
        .iter()
        .filter_map(|v| Layout::parse_entry(v))
        .collect();
    assert_eq!(usable.first().unwrap_or(&Layout::Flat), &best, "{text:?}");
    for l in &usable {
        assert_eq!(Layout::parse_entry(&l.to_string()).as_ref(), Some(l));
    }
    let rendered = layout::render(&usable);
    let again: Vec<Layout> = layout::parse_structure(&rendered)
        .expect("render parses")
        .iter()
        .filter_map(|v| Layout::parse_entry(v))
        .collect();
    assert_eq!(again, usable, "{text:?}");
}

/// Directories `dirs_match` accepts for `name` are lower-case hex and a prefix of one
/// supported digest of the name.
pub fn check_dirs(name: &str, dirs: &[&str]) {
    if layout::dirs_match(name, dirs) && !dirs.is_empty() {
        let prefix = dirs.concat();
        assert!(
            prefix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{name:?} {dirs:?}"
        );
        assert!(
            Algo::ALL
                .iter()
                .any(|a| a.hex(name.as_bytes()).starts_with(&prefix)),
            "{name:?} {dirs:?}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Sizes: `size::{parse, format}`.

/// Fuzz target `size`: the first 16 bytes as two numbers, and the whole input as a
/// size.
pub fn check_size(data: &[u8]) {
    if data.len() >= 16 {
        let (a, b) = (le_u64(&data[..8]), le_u64(&data[8..16]));
        let (lo, hi) = (a.min(b), a.max(b));
        check_size_value(lo);
        check_size_value(hi);
        check_size_order(lo, hi);
    }
    check_size_text(&String::from_utf8_lossy(data));
}

/// The value a `size::format` output stands for, e.g. `1.5 KiB` → 1536.0.
pub fn formatted_value(formatted: &str) -> f64 {
    let (number, unit) = formatted.split_once(' ').expect("number and unit");
    let shift = match unit {
        "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        "PiB" => 50,
        _ => panic!("unit {unit:?}"),
    };
    number.parse::<f64>().expect("number") * (1u64 << shift) as f64
}

/// `format(n)` is within rounding of `n` and (without the space) reads back to about
/// the same size, up to TiB, the largest suffix `parse` takes; the plain number parses
/// as itself, with a `B` suffix too, and with `K` scaled (or refused as too large).
pub fn check_size_value(n: u64) {
    let text = size::format(n);
    let value = formatted_value(&text);
    let exact = n as f64;
    assert!((value - exact).abs() <= exact * 0.05 + 0.5, "{n} {text:?}");
    match size::parse(&text.replace(' ', "")) {
        Ok(back) => assert!(
            (back as f64 - exact).abs() <= exact * 0.05 + 0.5,
            "{n} {text:?} reads back as {back}"
        ),
        Err(_) => assert!(text.ends_with("PiB"), "{text:?} does not parse"),
    }
    assert_eq!(size::parse(&n.to_string()), Ok(n));
    assert_eq!(size::parse(&format!("{n}B")), Ok(n));
    assert_eq!(
        size::parse(&format!("{n}K")).ok(),
        n.checked_mul(1024),
        "{n}K"
    );
}

/// `format` is monotonic: `lo <= hi` formats to no larger a value.
pub fn check_size_order(lo: u64, hi: u64) {
    let (flo, fhi) = (size::format(lo), size::format(hi));
    assert!(
        formatted_value(&flo) <= formatted_value(&fhi),
        "format({lo}) = {flo:?} > format({hi}) = {fhi:?}"
    );
}

/// A size `parse` accepts is the number times the unit the text names (fractions read
/// to 9 digits, rounding down); digits alone are bytes, exactly, and never a fraction.
pub fn check_size_text(text: &str) {
    let Ok(n) = size::parse(text) else {
        return;
    };
    let t = text.trim();
    if t.bytes().all(|b| b.is_ascii_digit()) {
        assert_eq!(Some(n), t.parse::<u64>().ok(), "{text:?}");
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let unit: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => panic!("{text:?} accepted with suffix {other:?}"),
    };
    assert_ne!(number, ".", "{text:?} accepted without digits");
    let x: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("{text:?} accepted with number {number:?}"));
    let want = x * unit as f64;
    assert!(
        n as f64 <= want * (1.0 + 1e-12) + 1.0
            && n as f64 >= want * (1.0 - 1e-12) - unit as f64 * 1e-9 - 1.0,
        "{text:?} -> {n}, expected about {want}"
    );
    if unit == 1 {
        assert!(
            !number.contains('.') || number.ends_with('.'),
            "{text:?}: a fraction of a byte"
        );
    }
    let _ = size::format(n);
}

// ---------------------------------------------------------------------------------
// Conditional requests: `conditional::{evaluate, answer}`.

/// The headers a conditional request may carry, in the order the checks fill them.
pub const CONDITIONAL_HEADERS: [&str; 4] =
    ["Range", "If-Range", "If-None-Match", "If-Modified-Since"];

/// The `Last-Modified` of the representations checked: Sun, 06 Nov 1994 08:49:37 GMT.
pub const LAST_MODIFIED_SECS: u64 = 784_111_777;

/// Fuzz target `conditional`: a flags byte picks the length mode (bits 0-1, see
/// [`length_from`]), the method (bits 2-3, see [`method_from`]) and drops
/// `Last-Modified` (bit 4) or the `ETag` (bit 5); 8 bytes give the length; the rest is
/// up to four header values separated by newlines, in the order of
/// [`CONDITIONAL_HEADERS`], an empty value meaning the header is absent.
pub fn check_conditional(data: &[u8]) {
    if data.len() < 10 {
        return;
    }
    let (flags, rest) = (data[0], &data[9..]);
    let len = length_from(flags, le_u64(&data[1..9]));
    let rep = representation(len, flags & 0x10 == 0, flags & 0x20 == 0);
    let text = String::from_utf8_lossy(rest);
    let values: Vec<&str> = text.split('\n').take(4).collect();
    let req = conditional_request(method_from(u64::from(flags >> 2)), &values);
    check_conditional_request(&req, &rep);
}

/// GET half the time, else HEAD or POST.
pub fn method_from(n: u64) -> Method {
    match n % 4 {
        0 | 1 => Method::Get,
        2 => Method::Head,
        _ => Method::Post,
    }
}

/// A `len`-byte representation, with or without a `Last-Modified` date
/// ([`LAST_MODIFIED_SECS`]) and an `ETag` (`"abc"`).
pub fn representation(len: u64, last_modified: bool, etag: bool) -> Representation {
    Representation {
        len,
        last_modified: last_modified.then(|| UNIX_EPOCH + Duration::from_secs(LAST_MODIFIED_SECS)),
        etag: etag.then(|| "\"abc\"".to_owned()),
        content_type: "application/octet-stream".into(),
    }
}

/// A request for `/distfiles/f` with each of [`CONDITIONAL_HEADERS`] whose value in
/// `values` (same order) is there and not empty.
pub fn conditional_request<S: AsRef<str>>(method: Method, values: &[S]) -> Request {
    let mut req = Request::new(method, "/distfiles/f").expect("valid target");
    for (name, value) in CONDITIONAL_HEADERS.into_iter().zip(values) {
        let value = value.as_ref();
        if !value.is_empty() {
            req = req.with_header(name, value);
        }
    }
    req
}

/// `evaluate` and `answer` agree with each other and with the request: 304 only for
/// GET or HEAD with a condition (and `If-None-Match` wins over `If-Modified-Since`),
/// 206 and 416 only for a GET with a range it can read, a partial range inside the
/// representation; status, body callback, `Accept-Ranges`, `Content-Range` and
/// `Last-Modified` as the outcome says.
pub fn check_conditional_request(req: &Request, rep: &Representation) {
    let method = req.method();
    let has = |name| req.header(name).is_some();
    let (has_range, has_inm, has_ims) =
        (has("Range"), has("If-None-Match"), has("If-Modified-Since"));
    let len = rep.len;
    let outcome = conditional::evaluate(req, rep);
    match outcome {
        Outcome::NotModified => {
            assert!(matches!(method, Method::Get | Method::Head), "{method:?}");
            assert!(
                has_inm || (has_ims && rep.last_modified.is_some()),
                "{req:?}"
            );
        }
        Outcome::Full => {}
        Outcome::Partial { start, len: n } => {
            assert_eq!(*method, Method::Get);
            assert!(has_range, "{req:?}");
            assert!(n >= 1, "{req:?}");
            assert!(
                start.checked_add(n).is_some_and(|end| end <= len),
                "{start}+{n} > {len}"
            );
        }
        Outcome::Unsatisfiable => {
            assert_eq!(*method, Method::Get);
            assert!(has_range, "{req:?}");
        }
    }
    // If-None-Match wins over If-Modified-Since: with a matching tag, a date is moot.
    if has_inm && rep.etag.is_none() && outcome == Outcome::NotModified {
        assert_eq!(req.header("If-None-Match").map(str::trim), Some("*"));
    }
    // A Range the parser ignores means the whole representation (or 304).
    if req.header("Range").and_then(range::parse).is_none() {
        assert!(
            matches!(outcome, Outcome::Full | Outcome::NotModified),
            "{outcome:?} for {req:?}"
        );
    }

    let mut called = None;
    let resp = conditional::answer(req, rep, |s, n| {
        called = Some((s, n));
        Body::Empty
    });
    let (status, want_called) = match outcome {
        Outcome::NotModified => (304, None),
        Outcome::Full => (200, Some((0, len))),
        Outcome::Partial { start, len: n } => (206, Some((start, n))),
        Outcome::Unsatisfiable => (416, None),
    };
    assert_eq!(
        (resp.status(), called),
        (status, want_called),
        "{outcome:?}"
    );
    assert_eq!(resp.header("Accept-Ranges"), Some("bytes"));
    match outcome {
        Outcome::Partial { start, len: n } => {
            let want = format!("bytes {start}-{}/{len}", start + n - 1);
            assert_eq!(resp.header("Content-Range"), Some(want.as_str()));
        }
        Outcome::Unsatisfiable => {
            let want = format!("bytes */{len}");
            assert_eq!(resp.header("Content-Range"), Some(want.as_str()));
        }
        Outcome::Full | Outcome::NotModified => {}
    }
    if outcome != Outcome::Unsatisfiable
        && let Some(t) = rep.last_modified
    {
        let lm = resp.header("Last-Modified").expect("Last-Modified");
        assert_eq!(date::parse(lm), Some(t), "{lm:?}");
    }
}
