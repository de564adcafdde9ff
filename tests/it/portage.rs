//! Real portage against the real binary: `contrib/portage-check.py` run by a Python
//! that has portage (from PyPI), named by `PC_PORTAGE_PYTHON`:
//!
//! ```text
//! python3 -m venv /tmp/pvenv && /tmp/pvenv/bin/pip install portage
//! PC_PORTAGE_PYTHON=/tmp/pvenv/bin/python cargo test --test it portage
//! ```
//!
//! Without it the test says it skipped; in CI (`CI` set and not empty) it fails
//! instead, since `.ci/run` makes the venv. The script checks a resumed download, a
//! GLEP 75 fetch, a `RESTRICT="mirror"` distfile fetched from its `SRC_URI` through
//! the cache set up as the `local` mirror (`--repo`), and the binhost
//! `If-Modified-Since` round trip.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::process::binary_path;
use crate::support::tools::skip;

#[test]
fn real_portage_fetches_through_the_cache() {
    let Some(python) = std::env::var_os("PC_PORTAGE_PYTHON") else {
        skip(
            "PC_PORTAGE_PYTHON is not set to a Python with portage (pip install portage in a \
             venv; .ci/run makes one and sets it)",
        );
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/portage-check.py");
    let started = Instant::now();
    let out = Command::new(&python)
        .arg(&script)
        .arg(binary_path())
        .output()
        .expect("run contrib/portage-check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "portage-check.py failed:\n{stdout}\n{stderr}"
    );
    for check in [
        "ok   fetch resume-test-1.0.tar.gz",
        "ok   fetch layout-test-2.0.tar.xz",
        "ok   fetch restricted-test-3.1.tar.bz2",
        "ok   binhost If-Modified-Since",
    ] {
        assert!(stdout.contains(check), "{check} missing:\n{stdout}");
    }
    assert!(started.elapsed() < Duration::from_secs(120));
}
