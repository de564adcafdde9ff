//! `--source /PREFIX=URL`: a source that serves only the paths below a path prefix,
//! so that one instance serves several distributions' mirrors (`/debian`,
//! `/archlinux`, `/fedora`…). A plain `--source URL` has no prefix: it serves every
//! path no prefix claims (it behaves as the prefix `/`). Which sources a request goes
//! to is decided by the mirror ([`crate::mirror::route()`]); this module reads and
//! checks the flag's value.

use super::Error;

/// One `--source` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSpec {
    /// The path prefix it serves (`/debian`: no trailing `/`), `None` for a plain
    /// source.
    pub prefix: Option<String>,
    /// The base URL.
    pub url: String,
}

/// Reads `URL` or `/PREFIX=URL`. The URL is checked as any source's; the prefix must
/// be an absolute path without empty, `.` or `..` segments, percent signs, query or
/// fragment, and not the status pages' `/-`. A trailing `/` is dropped; `/=URL` is
/// the same as a plain `URL`.
pub fn parse(spec: &str) -> Result<SourceSpec, Error> {
    let bad = |reason| Error::BadSource {
        url: spec.to_owned(),
        reason,
    };
    let Some((prefix, url)) = spec.split_once('=').filter(|_| spec.starts_with('/')) else {
        if spec
            .split_once('=')
            .is_some_and(|(p, _)| !p.contains("://"))
        {
            return Err(bad(
                "a path prefix starts with /, as in /debian=http://deb.debian.org/debian",
            ));
        }
        check_source(spec)?;
        return Ok(SourceSpec {
            prefix: None,
            url: spec.to_owned(),
        });
    };
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty() {
        crate::proto::path::check(prefix).map_err(|_| {
            bad("the prefix is not a clean absolute path (an empty, . or .. segment, or a \\)")
        })?;
        if prefix.contains(['%', '?', '#']) || prefix.chars().any(char::is_whitespace) {
            return Err(bad(
                "the prefix is a plain path: no %, ?, # or spaces (write it decoded)",
            ));
        }
        if prefix == "/-" || prefix.starts_with("/-/") {
            return Err(bad("/- is where the status pages live"));
        }
    }
    check_source(url).map_err(|e| match e {
        Error::BadSource { reason, .. } => bad(reason),
        other => other,
    })?;
    Ok(SourceSpec {
        prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
        url: url.to_owned(),
    })
}

/// Refuses source URLs that are not `http://host…` or `https://host…`.
pub fn check_source(url: &str) -> Result<(), Error> {
    let bad = |reason| Error::BadSource {
        url: url.to_owned(),
        reason,
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| bad("not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if rest.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "a source is a base URL, without query, fragment or spaces",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(spec: &str) -> (Option<String>, String) {
        let s = parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        (s.prefix, s.url)
    }

    fn refused(spec: &str) -> String {
        parse(spec).unwrap_err().to_string()
    }

    #[test]
    fn plain_and_prefixed_sources() {
        assert_eq!(
            ok("https://distfiles.gentoo.org"),
            (None, "https://distfiles.gentoo.org".into())
        );
        assert_eq!(
            ok("/debian=http://deb.debian.org/debian"),
            (
                Some("/debian".into()),
                "http://deb.debian.org/debian".into()
            )
        );
        assert_eq!(
            ok("/fedora/linux/=https://dl.fedoraproject.org/pub/fedora/linux/"),
            (
                Some("/fedora/linux".into()),
                "https://dl.fedoraproject.org/pub/fedora/linux/".into()
            )
        );
        assert_eq!(ok("/=http://a"), (None, "http://a".into()));
        assert_eq!(
            ok("/a+b~c=http://a"),
            (Some("/a+b~c".into()), "http://a".into())
        );
    }

    #[test]
    fn source_urls() {
        for ok in [
            "http://a",
            "https://distfiles.gentoo.org",
            "http://[::1]:8080/mirror/",
        ] {
            assert!(check_source(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://a",
            "distfiles.gentoo.org",
            "http://",
            "http:///x",
            "http://a/?q",
            "http://a b",
        ] {
            let e = check_source(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{bad}: ")), "{e}");
        }
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        for (spec, says) in [
            ("/de/../bian=http://a", "not a clean absolute path"),
            ("/de//bian=http://a", "not a clean absolute path"),
            ("/./x=http://a", "not a clean absolute path"),
            ("/x\\y=http://a", "not a clean absolute path"),
            ("/a%20b=http://a", "plain path"),
            ("/a b=http://a", "plain path"),
            ("/a?b=http://a", "plain path"),
            ("/-=http://a", "status pages"),
            ("/-/x=http://a", "status pages"),
            ("debian=http://a", "starts with /"),
            ("/debian=ftp://a", "not an http:// or https:// URL"),
            ("/debian=", "not an http:// or https:// URL"),
            ("/debian=http://", "no host"),
            ("ftp://a", "not an http:// or https:// URL"),
        ] {
            let e = refused(spec);
            assert!(e.starts_with(&format!("{spec}: ")), "{e}");
            assert!(e.contains(says), "{spec}: {e}");
        }
    }
}
