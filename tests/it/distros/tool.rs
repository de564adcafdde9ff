//! Running the real tools: whether they are installed (skip outside CI, fail in CI),
//! and one command with a bounded wait, a clean environment and its output kept.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::tools::{on_path, skip};

/// The longest any one tool may run before the test kills it and fails.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A program the tests need and the Debian package that installs it (`.ci/run`
/// installs them all: [`ci_installs_every_tool`] checks its table).
pub struct Tool {
    /// A command on `PATH`, or an absolute path to a file.
    pub needs: &'static str,
    pub package: &'static str,
}

const GPG: Tool = Tool {
    needs: "gpg",
    package: "gpg",
};
/// gpg signs through its agent.
const GPG_AGENT: Tool = Tool {
    needs: "gpg-agent",
    package: "gpg-agent",
};
/// Stops the agent when a test is done ([`super::gpg::stop_agent`]).
const GPGCONF: Tool = Tool {
    needs: "gpgconf",
    package: "gpgconf",
};
pub const APT: &[Tool] = &[
    GPG,
    GPG_AGENT,
    GPGCONF,
    Tool {
        needs: "apt-get",
        package: "apt",
    },
    Tool {
        needs: "apt-cache",
        package: "apt",
    },
    Tool {
        needs: "apt-ftparchive",
        package: "apt-utils",
    },
    Tool {
        needs: "dpkg-deb",
        package: "dpkg",
    },
    Tool {
        needs: "xz",
        package: "xz-utils",
    },
    Tool {
        needs: "gzip",
        package: "gzip",
    },
];
pub const PACMAN: &[Tool] = &[
    GPG,
    GPG_AGENT,
    GPGCONF,
    Tool {
        needs: "pacman",
        package: "pacman-package-manager",
    },
    Tool {
        needs: "repo-add",
        package: "pacman-package-manager",
    },
    // repo-add sources its helpers from makepkg's library.
    Tool {
        needs: "/usr/share/makepkg/util/compress.sh",
        package: "makepkg",
    },
    Tool {
        needs: "bsdtar",
        package: "libarchive-tools",
    },
    Tool {
        needs: "zstd",
        package: "zstd",
    },
];
pub const DNF: &[Tool] = &[
    Tool {
        needs: "dnf",
        package: "dnf",
    },
    Tool {
        needs: "rpmbuild",
        package: "rpm",
    },
    Tool {
        needs: "createrepo_c",
        package: "createrepo-c",
    },
];

/// Whether `needs` is there: a file, or a command on `PATH` (where [`command`] finds
/// it).
fn installed(needs: &str) -> bool {
    if needs.starts_with('/') {
        return Path::new(needs).exists();
    }
    on_path(needs).is_some()
}

/// Whether every tool of `tools` is installed. When one is missing: in CI the test
/// fails, elsewhere it prints that it skips and the caller returns (see
/// [`skip`]).
#[track_caller]
pub fn require(test: &str, tools: &[Tool]) -> bool {
    let missing: Vec<&Tool> = tools.iter().filter(|t| !installed(t.needs)).collect();
    if missing.is_empty() {
        return true;
    }
    let mut packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    packages.dedup();
    let names: Vec<&str> = missing.iter().map(|t| t.needs).collect();
    skip(&format!(
        "{test}: missing {} (apt-get install {})",
        names.join(", "),
        packages.join(" ")
    ));
    false
}

/// `program` with an environment holding only `PATH`, `HOME=home` and the C locale:
/// no proxy variables, no user configuration, messages in English.
pub fn command(program: &str, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("LC_ALL", "C")
        .env("TERM", "dumb")
        .stdin(Stdio::null());
    cmd
}

/// What one command did.
#[derive(Clone, Debug)]
pub struct Run {
    /// The command line, for messages.
    pub line: String,
    /// The exit code (`None`: killed by a signal or by the time limit).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Lines a client's own rules call a warning or an error (see each client).
    pub problems: Vec<String>,
}

impl Run {
    /// Exit status 0 and no warning or error line.
    pub fn clean(&self) -> bool {
        self.code == Some(0) && self.problems.is_empty()
    }

    /// Stdout then stderr.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Keeps as problems the lines of the output that `is_problem` picks.
    pub fn with_problems(mut self, is_problem: impl Fn(&str) -> bool) -> Run {
        self.problems = self
            .output()
            .lines()
            .filter(|l| is_problem(l))
            .map(str::to_owned)
            .collect();
        self
    }

    /// Panics with the whole output unless the command exited 0.
    pub fn expect_ok(self) -> Run {
        assert_eq!(self.code, Some(0), "{self}");
        self
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}  (exit {:?})", self.line, self.code)?;
        for l in self.output().lines() {
            writeln!(f, "    {l}")?;
        }
        Ok(())
    }
}

/// Runs `cmd` to the end, at most [`LIMIT`]; output is captured, never inherited.
pub fn run(cmd: &mut Command) -> Run {
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    // A daemon the tool starts (gpg-agent) may keep a pipe open: read each pipe on
    // its own thread and wait for it only briefly once the tool has exited.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
        });
        rx
    };
    let collect = |rx: std::sync::mpsc::Receiver<String>| {
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| "(output still open after the tool exited)".into())
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let run = Run {
        line,
        code: status.and_then(|s| s.code()),
        stdout: collect(out),
        stderr: collect(err),
        problems: Vec::new(),
    };
    assert!(status.is_some(), "killed after {LIMIT:?}:\n{run}");
    run
}

/// `.ci/run` installs every tool these tests need: its table of commands and packages
/// holds each of [`APT`], [`PACMAN`] and [`DNF`] (the two lists once drifted apart).
#[test]
fn ci_installs_every_tool() {
    let script = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run"))
        .expect("read .ci/run");
    let table: Vec<(&str, &str)> = script
        .split_once("<<'TOOLS'\n")
        .and_then(|(_, rest)| rest.split_once("\nTOOLS\n"))
        .expect("the TOOLS table in .ci/run")
        .0
        .lines()
        .filter_map(|l| l.split_once(' '))
        .collect();
    for t in APT.iter().chain(PACMAN).chain(DNF) {
        assert!(
            table.contains(&(t.needs, t.package)),
            ".ci/run does not install {} (`{} {}` in its TOOLS table)",
            t.needs,
            t.needs,
            t.package
        );
    }
}
