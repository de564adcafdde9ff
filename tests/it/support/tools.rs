//! The real programs some tests drive (nginx, HAProxy, openssl, the package managers
//! of other distributions, portage): where they are, and what a test does when one is
//! missing. Outside CI it says it skipped and passes; in CI (`CI` set to anything but
//! the empty string, as GitHub Actions, GitLab and `.ci/run` set it) it fails, since
//! `.ci/run` installs everything these tests need.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Whether this is a CI run: `CI` is set and not empty.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// For a test that cannot run here because of what `missing` says: fails in CI,
/// elsewhere prints `skipped: {missing}` (the caller then returns).
#[track_caller]
pub fn skip(missing: &str) {
    assert!(!in_ci(), "{missing}; CI is set, so this test must run");
    eprintln!("skipped: {missing}");
}

/// `name` if it is installed (see [`find_program`]); otherwise `None` after
/// [`skip`] (a failure in CI).
#[track_caller]
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = find_program(name);
    if found.is_none() {
        skip(&format!(
            "{name} is not installed (apt-get install {name}; .ci/run installs it)"
        ));
    }
    found
}

/// The first executable file called `name` on `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| executable(p))
}

/// Where `name` is installed: on `PATH`, else in the sbin directories (Debian puts
/// nginx and haproxy in /usr/sbin, which an unprivileged user's `PATH` often lacks).
pub fn find_program(name: &str) -> Option<PathBuf> {
    on_path(name).or_else(|| {
        ["/usr/local/sbin", "/usr/sbin", "/sbin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| executable(p))
    })
}

fn executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
