//! Request targets: `path::parse_target`, `decode`, `encode` and `check` on token soups,
//! random strings and valid paths with one bad segment.

use package_cache::http::path::{self, PathError};

use super::{check, invariants};

const PATH_TOKENS: &[&str] = &[
    "/",
    "/",
    "/",
    "a",
    "distfiles",
    "foo-1.0.tar.gz",
    ".",
    "..",
    "//",
    "%2e",
    "%2E",
    "%2e%2e",
    "%2f",
    "%2F",
    "%5c",
    "\\",
    "%00",
    "%0a",
    "%",
    "%4",
    "%zz",
    "%25",
    "%252e",
    "%C3%A9",
    "%c2%85",
    "%ff",
    "\u{e9}",
    "\u{85}",
    "\u{1f600}",
    "+",
    " ",
    "%20",
    "~",
    "?",
    "#",
    "&",
    "=",
    "http://",
    "HTTPS://",
    "http:/",
    "host:80",
    "*",
];

#[test]
fn path_targets_from_tokens_are_safe_or_refused() {
    check("path_targets_from_tokens", 6000, |rng| {
        let mut target = rng.tokens(PATH_TOKENS, 14);
        if rng.one_in(2) {
            target.insert(0, '/');
        }
        invariants::check_path_str(&target);
    });
}

#[test]
fn path_random_strings_never_panic() {
    check("path_random_strings", 4000, |rng| {
        let raw = rng.bytes(40);
        if rng.one_in(2) {
            invariants::check_path(&raw);
        } else {
            invariants::check_path_str(&rng.string(40));
        }
    });
}

#[test]
fn path_encode_then_decode_is_identity() {
    check("path_encode_decode", 5000, |rng| {
        invariants::check_path_encode(&rng.string(60));
    });
}

#[test]
fn path_valid_paths_round_trip_and_one_bad_segment_spoils_them() {
    check("path_valid_paths", 4000, |rng| {
        let n = 1 + rng.index(6);
        let mut segments: Vec<String> = (0..n)
            .map(|_| {
                let s: String = (0..1 + rng.index(20))
                    .map(|_| {
                        let c = rng.char();
                        if c == '/' || c == '\\' || c.is_control() {
                            'x'
                        } else {
                            c
                        }
                    })
                    .collect();
                if s == "." || s == ".." {
                    "dot".into()
                } else {
                    s
                }
            })
            .collect();
        let trailing = if rng.one_in(3) { "/" } else { "" };
        let good = format!("/{}{trailing}", segments.join("/"));
        assert_eq!(path::check(&good), Ok(()), "{good:?}");
        invariants::assert_safe_path(&good, &good);
        let t = path::parse_target(&format!("{}?q=1", path::encode(&good))).unwrap();
        assert_eq!(
            (t.path.as_str(), t.query.as_deref()),
            (good.as_str(), Some("q=1"))
        );

        let i = rng.index(segments.len());
        let mut bad = rng.pick(&["", ".", ".."]);
        if bad.is_empty() && i == segments.len() - 1 && trailing.is_empty() {
            bad = ".."; // "/a/" is a directory, not an empty segment
        }
        segments[i] = bad.to_owned();
        let spoiled = format!("/{}{trailing}", segments.join("/"));
        assert_eq!(
            path::check(&spoiled),
            Err(PathError::BadSegment),
            "{spoiled:?}"
        );
        let encoded = path::encode(&spoiled).replace('.', "%2e");
        assert_eq!(
            path::parse_target(&encoded),
            Err(PathError::BadSegment),
            "{encoded:?}"
        );
    });
}

#[test]
fn path_absolute_form_with_non_ascii_does_not_panic() {
    // Regression: the scheme was compared by slicing the target at a byte offset that
    // could fall inside a multi-byte character.
    for target in [
        "http:/\u{e9}",
        "http:/\u{e9}x/y",
        "https:/\u{e9}",
        "htt\u{e9}://x/",
        "\u{1f600}\u{1f600}",
        "http://\u{e9}/a",
    ] {
        let got = path::parse_target(target).map(|t| t.path);
        let want = if target == "http://\u{e9}/a" {
            Ok("/a".to_owned())
        } else {
            Err(PathError::NotAbsolute)
        };
        assert_eq!(got, want, "{target:?}");
    }
}
