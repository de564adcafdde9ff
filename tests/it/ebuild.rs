//! The Gentoo ebuilds in contrib/gentoo: the versioned one lists exactly the crates of
//! Cargo.lock in CRATES (so `emerge` fetches every crate the build needs, and nothing
//! else), every ebuild parses as bash, and the files they install exist. No network.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const DIR: &str = "contrib/gentoo/net-proxy/package-cache";
/// The one command that brings CRATES back in line with Cargo.lock.
const REGENERATE: &str = "contrib/gentoo/update-crates";

fn path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The value of `key = "value"` in the first TOML table of `text` that has it.
fn toml_string<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"'))
    })
}

/// `name@version` of every crates.io package in Cargo.lock (what cargo.eclass fetches).
fn locked_crates() -> BTreeSet<String> {
    let lock = read("Cargo.lock");
    lock.split("[[package]]")
        .skip(1)
        .filter(|block| toml_string(block, "source").is_some_and(|s| s.starts_with("registry+")))
        .map(|block| {
            let name = toml_string(block, "name").expect("a package has a name");
            let version = toml_string(block, "version").expect("a package has a version");
            format!("{name}@{version}")
        })
        .collect()
}

/// The words of the ebuild's `CRATES="..."`, in order.
fn ebuild_crates(ebuild: &str) -> Vec<String> {
    let start = ebuild
        .find("\nCRATES=\"")
        .expect("the ebuild assigns CRATES=\"...\"")
        + "\nCRATES=\"".len();
    let len = ebuild[start..]
        .find('"')
        .expect("CRATES=\" is closed by a quote");
    ebuild[start..start + len]
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn package_version() -> String {
    toml_string(&read("Cargo.toml"), "version")
        .expect("Cargo.toml has a version")
        .to_owned()
}

fn versioned_ebuild() -> (String, String) {
    let rel = format!("{DIR}/package-cache-{}.ebuild", package_version());
    let text = std::fs::read_to_string(path(&rel)).unwrap_or_else(|e| {
        panic!("{rel}: {e}: every version in Cargo.toml has an ebuild; run {REGENERATE}")
    });
    (rel, text)
}

#[test]
fn versioned_ebuild_lists_exactly_the_crates_of_cargo_lock() {
    let (rel, ebuild) = versioned_ebuild();
    let listed = ebuild_crates(&ebuild);
    let listed_set: BTreeSet<String> = listed.iter().cloned().collect();
    let locked = locked_crates();
    assert!(
        locked.len() > 10,
        "Cargo.lock lists only {} crates",
        locked.len()
    );
    let missing: Vec<_> = locked.difference(&listed_set).collect();
    let extra: Vec<_> = listed_set.difference(&locked).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && listed.len() == listed_set.len(),
        "CRATES in {rel} does not match Cargo.lock.\n  missing from CRATES: {missing:?}\n  \
         in CRATES but not in Cargo.lock: {extra:?}\n  listed twice: {}\n\
         Regenerate it (needs `pip install pycargoebuild`) with:\n\n    {REGENERATE}\n",
        listed.len() - listed_set.len()
    );
}

#[test]
fn versioned_ebuild_asks_for_the_rust_version_of_cargo_toml() {
    let (rel, ebuild) = versioned_ebuild();
    let manifest = read("Cargo.toml");
    let wanted = toml_string(&manifest, "rust-version").expect("rust-version");
    let min = toml_string(&ebuild, "RUST_MIN_VER").expect("RUST_MIN_VER in the ebuild");
    assert!(
        min == wanted || min.strip_suffix(".0") == Some(wanted),
        "{rel}: RUST_MIN_VER={min}, Cargo.toml rust-version = {wanted}"
    );
}

#[test]
fn ebuilds_parse_as_bash_and_install_files_that_exist() {
    let mut ebuilds: Vec<PathBuf> = Vec::new();
    let mut dirs = vec![path("contrib/gentoo")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "ebuild") {
                ebuilds.push(p);
            }
        }
    }
    ebuilds.sort();
    let names: Vec<_> = ebuilds
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"package-cache-9999.ebuild".to_owned()),
        "{names:?}"
    );
    for ebuild in &ebuilds {
        let out = Command::new("bash")
            .arg("-n")
            .arg(ebuild)
            .output()
            .expect("run bash -n");
        assert!(
            out.status.success(),
            "{}: {}",
            ebuild.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(ebuild).unwrap();
        assert!(text.contains("\nEAPI=8\n"), "{}: EAPI=8", ebuild.display());
        // Every file of ours that src_install installs is in the tree.
        let code = text.lines().filter(|l| !l.trim_start().starts_with('#'));
        for word in code.flat_map(str::split_whitespace) {
            if let Some(rel) = word.strip_prefix("contrib/") {
                let rel = format!("contrib/{rel}");
                assert!(
                    path(&rel).is_file(),
                    "{} installs {rel}, which does not exist",
                    ebuild.display()
                );
            }
        }
    }
    for metadata in ["net-proxy/package-cache", "acct-user/package-cache"] {
        let text = read(&format!("contrib/gentoo/{metadata}/metadata.xml"));
        assert!(text.contains("<pkgmetadata>") && text.trim_end().ends_with("</pkgmetadata>"));
    }
}
