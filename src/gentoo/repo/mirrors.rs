//! `profiles/thirdpartymirrors` and `mirror://NAME/path` URIs.
//!
//! Each line is `NAME url url …`; a token starting with `#` ends the line, blank
//! lines and lines with a name but no URL are skipped, and a name given twice gets
//! the URLs of both lines (portage's `grabdict`). Portage stacks the files of every
//! configured repository into one table (`config.thirdpartymirrors()`), so a
//! `mirror://` URI of an overlay resolves through the Gentoo repository's list; so
//! does [`Mirrors::merge`].
//!
//! `mirror://NAME/path` becomes `URL/path` for each URL of `NAME` (trailing `/`
//! removed from the URL), in the file's order. Portage shuffles them to spread load;
//! we keep the order, so that failures are remembered per origin and retries are
//! predictable. An unknown `NAME` gives no URL (portage warns "No known mirror by the
//! name").

use std::collections::HashMap;

/// Parses a `thirdpartymirrors` file: (name, URLs) in the order names first appear.
pub fn parse(text: &str) -> Vec<(&str, Vec<&str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace().take_while(|w| !w.starts_with('#'));
        let Some(name) = words.next() else { continue };
        let urls: Vec<&str> = words.collect();
        if urls.is_empty() {
            continue;
        }
        match at.get(name) {
            Some(&i) => out[i].1.extend(urls),
            None => {
                at.insert(name, out.len());
                out.push((name, urls));
            }
        }
    }
    out
}

/// Splits `mirror://NAME/path` into (`NAME`, `path`); `None` for anything else,
/// including `mirror://NAME` without a `/` (portage: "Invalid mirror definition").
pub fn split_mirror_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("mirror://")?;
    let (name, path) = rest.split_once('/')?;
    (!name.is_empty()).then_some((name, path))
}

/// The third-party mirror table of every indexed repository, stacked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mirrors {
    by_name: HashMap<String, Vec<String>>,
}

impl Mirrors {
    /// An empty table.
    pub fn new() -> Mirrors {
        Mirrors::default()
    }

    /// Adds the entries of one `thirdpartymirrors` file after those already known:
    /// URLs of a name already present are appended, duplicates dropped. Tokens
    /// starting with `-` (portage's incremental removals) are ignored.
    pub fn merge(&mut self, text: &str) {
        for (name, urls) in parse(text) {
            let list = self.by_name.entry(name.to_owned()).or_default();
            for url in urls {
                if !url.starts_with('-') && !list.iter().any(|u| u == url) {
                    list.push(url.to_owned());
                }
            }
        }
    }

    /// The URLs of mirror `name`, in order.
    pub fn get(&self, name: &str) -> &[String] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// How many mirror names are known.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether no mirror is known.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Expands `uri`: each mirror's URL joined with the path for a `mirror://` URI
    /// (none for an unknown or malformed one), the URI itself otherwise.
    pub fn expand(&self, uri: &str) -> Vec<String> {
        if !uri.starts_with("mirror://") {
            return vec![uri.to_owned()];
        }
        let Some((name, path)) = split_mirror_uri(uri) else {
            return Vec::new();
        };
        self.get(name)
            .iter()
            .map(|base| format!("{}/{path}", base.trim_end_matches('/')))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# thirdpartymirrors: mirror://NAME/ URIs
gnu\thttps://ftpmirror.gnu.org/gnu https://mirrors.kernel.org/gnu/   # inline comment
nongnu https://download.savannah.gnu.org/releases
lonely
   # indented comment

gnu https://ftp.gnu.org/gnu
";

    #[test]
    fn parses_portage_style_files() {
        let parsed = parse(FILE);
        assert_eq!(
            parsed,
            vec![
                (
                    "gnu",
                    vec![
                        "https://ftpmirror.gnu.org/gnu",
                        "https://mirrors.kernel.org/gnu/",
                        "https://ftp.gnu.org/gnu"
                    ]
                ),
                ("nongnu", vec!["https://download.savannah.gnu.org/releases"]),
            ]
        );
    }

    #[test]
    fn expands_in_file_order_across_repositories() {
        let mut m = Mirrors::new();
        m.merge(FILE);
        m.merge("gnu https://overlay.example/gnu https://ftp.gnu.org/gnu -https://x\n");
        assert_eq!(m.len(), 2);
        assert_eq!(
            m.expand("mirror://gnu/which/which-2.23.tar.gz"),
            vec![
                "https://ftpmirror.gnu.org/gnu/which/which-2.23.tar.gz",
                "https://mirrors.kernel.org/gnu/which/which-2.23.tar.gz",
                "https://ftp.gnu.org/gnu/which/which-2.23.tar.gz",
                "https://overlay.example/gnu/which/which-2.23.tar.gz",
            ]
        );
        assert!(m.expand("mirror://nope/x").is_empty());
        assert!(m.expand("mirror://gnu").is_empty());
        assert_eq!(m.expand("https://h/x"), vec!["https://h/x"]);
        assert_eq!(split_mirror_uri("mirror:///x"), None);
    }
}
