//! The service files in contrib/: the OpenRC script and its conf.d (shell syntax, the
//! Python original's variables, the command line they build), the systemd unit, and
//! that every flag they pass is one the binary accepts. No network, no root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::TempDir;
use crate::support::process::{binary, binary_path};
use crate::support::tools::on_path;

const INIT_D: &str = "contrib/openrc/init.d/package-cache";
const CONF_D: &str = "contrib/openrc/conf.d/package-cache";
const UNIT: &str = "contrib/systemd/package-cache.service";

/// The Python original's OpenRC variables.
const VARIABLES: [&str; 7] = [
    "PC_USER",
    "PC_GROUP",
    "CACHE_DIR",
    "HOST",
    "PORT",
    "SOURCES",
    "PC_OPTS",
];

/// The command line the init script builds from the default settings.
const DEFAULT_ARGS: [&str; 9] = [
    "--syslog",
    "--host",
    "0.0.0.0",
    "--port",
    "4000",
    "--source",
    "http://distfiles.gentoo.org",
    "--cache",
    "/usr/portage",
];

fn path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The POSIX shells to try the scripts with: sh, and bash and dash when installed.
fn shells() -> Vec<&'static str> {
    let shells: Vec<_> = ["sh", "bash", "dash"]
        .into_iter()
        .filter(|s| on_path(s).is_some())
        .collect();
    assert!(shells.contains(&"sh"), "no sh on PATH");
    shells
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Lines that are not comments, blank lines left out.
fn active_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
}

/// The `--long-flags` in `text`.
fn flags(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w[2..].starts_with(|c: char| c.is_ascii_lowercase()))
        .map(str::to_owned)
        .collect()
}

/// Runs `body` in `shell` the way openrc-run would get there: openrc-run's helpers
/// stubbed, the conf.d sourced (when `with_conf_d`), then `overrides` (shell
/// assignments), then the init script. Returns stdout's lines; fails on any stderr.
fn openrc(shell: &str, with_conf_d: bool, overrides: &str, body: &str) -> Vec<String> {
    let script = format!(
        r#"
RC_SVCNAME=package-cache
SVCNAME=package-cache
need() {{ echo "need $*"; }}
use() {{ echo "use $*"; }}
after() {{ :; }}
before() {{ :; }}
provide() {{ :; }}
keyword() {{ :; }}
ebegin() {{ :; }}
eend() {{ :; }}
einfo() {{ :; }}
ewarn() {{ :; }}
eerror() {{ echo "eerror $*" >&2; }}
checkpath() {{ echo "checkpath $*"; }}
if [ "$3" = yes ]; then . "$1"; fi
{overrides}
. "$2"
{body}
"#
    );
    let out = run(Command::new(shell)
        .arg("-c")
        .arg(&script)
        .arg(shell)
        .arg(path(CONF_D))
        .arg(path(INIT_D))
        .arg(if with_conf_d { "yes" } else { "no" }));
    let stderr = text(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{shell}: {}\n{stderr}\nscript:\n{script}",
        out.status
    );
    text(&out.stdout).lines().map(str::to_owned).collect()
}

/// The arguments openrc-run would pass to the binary: `command_args` through `eval`,
/// as its start-stop-daemon and supervise-daemon helpers do.
fn openrc_args(shell: &str, with_conf_d: bool, overrides: &str) -> Vec<String> {
    openrc(
        shell,
        with_conf_d,
        overrides,
        r#"eval "set -- ${command_args}"; for a in "$@"; do printf '%s\n' "$a"; done"#,
    )
}

/// The binary's --help, as a list of its flags.
fn help_flags() -> Vec<String> {
    let out = run(binary().arg("--help"));
    assert!(out.status.success(), "--help: {}", out.status);
    flags(&text(&out.stdout))
}

/// Asserts that the binary parses `args` (every flag known, every value valid): with
/// `--version` added it prints its version instead of serving.
fn assert_binary_accepts(args: &[String], what: &str) {
    let out = run(binary().args(args).arg("--version"));
    assert!(
        out.status.success() && text(&out.stdout).starts_with("package-cache "),
        "{what}: the binary refuses {args:?}: {}",
        text(&out.stderr)
    );
}

/// The systemd unit as (section, key, value) triples; fails on anything that is not
/// a comment, a `[Section]` or a `Key=Value` inside a section.
fn parse_unit(text: &str) -> Vec<(String, String, String)> {
    let mut entries = Vec::new();
    let mut section: Option<String> = None;
    let mut pending = String::new();
    for (n, raw) in text.lines().enumerate() {
        let n = n + 1;
        let line = raw.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with(['#', ';'])) {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        let line = std::mem::take(&mut pending) + line;
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_owned());
            continue;
        }
        let section = section
            .clone()
            .unwrap_or_else(|| panic!("{UNIT}:{n}: outside a section: {raw}"));
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{UNIT}:{n}: not Key=Value: {raw}"));
        let key = key.trim();
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()),
            "{UNIT}:{n}: bad key {key:?}"
        );
        entries.push((section, key.to_owned(), value.trim().to_owned()));
    }
    assert!(pending.is_empty(), "{UNIT}: ends with a continuation");
    entries
}

fn unit_values(entries: &[(String, String, String)], section: &str, key: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.clone())
        .collect()
}

/// The one ExecStart of the unit, split into words (it uses no quotes).
fn exec_start() -> Vec<String> {
    let entries = parse_unit(&read(UNIT));
    let exec = unit_values(&entries, "Service", "ExecStart");
    assert_eq!(exec.len(), 1, "{UNIT}: one ExecStart: {exec:?}");
    assert!(
        !exec[0].contains(['"', '\'']),
        "{UNIT}: ExecStart is split on spaces here; no quotes: {}",
        exec[0]
    );
    exec[0].split_whitespace().map(str::to_owned).collect()
}

/// The value following `flag` in `args`.
fn value_of<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} missing from {args:?}"));
    args.get(i + 1)
        .unwrap_or_else(|| panic!("{flag} without a value"))
}

/// The `PC_OPTS="..."` examples in the conf.d's comments.
fn pc_opts_examples() -> Vec<String> {
    let examples: Vec<String> = read(CONF_D)
        .lines()
        .filter_map(|l| l.trim().strip_prefix('#'))
        .filter_map(|l| l.trim().strip_prefix("PC_OPTS=\""))
        .map(|l| l.split('"').next().unwrap().to_owned())
        .collect();
    assert!(
        examples.len() >= 3,
        "{CONF_D}: PC_OPTS examples: {examples:?}"
    );
    examples
}

#[test]
fn shell_syntax() {
    for shell in shells() {
        for file in [INIT_D, CONF_D] {
            let out = run(Command::new(shell).arg("-n").arg(path(file)));
            assert!(
                out.status.success(),
                "{shell} -n {file}: {}",
                text(&out.stderr)
            );
        }
    }
}

#[test]
fn openrc_files_use_the_original_variables() {
    let init = read(INIT_D);
    assert!(
        init.starts_with("#!/sbin/openrc-run\n"),
        "{INIT_D}: shebang"
    );
    let conf = read(CONF_D);
    assert!(
        !conf.starts_with("#!"),
        "{CONF_D}: sourced by openrc-run, not run"
    );
    for var in VARIABLES {
        assert!(
            active_lines(&init).any(|l| l.contains(&format!("${{{var}"))),
            "{INIT_D} does not use {var}"
        );
        assert!(
            active_lines(&conf).any(|l| l.starts_with(&format!("{var}="))),
            "{CONF_D} does not set {var}"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(INIT_D))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{INIT_D} is not executable: {mode:o}");
    }
}

#[test]
fn openrc_default_command_line() {
    let expected: Vec<String> = DEFAULT_ARGS.iter().map(|s| s.to_string()).collect();
    let show = r#"
printf 'command=%s\n' "$command"
printf 'command_user=%s\n' "$command_user"
printf 'command_background=%s\n' "$command_background"
printf 'pidfile=%s\n' "$pidfile"
printf 'directory=%s\n' "$directory"
depend
"#;
    for shell in shells() {
        // The conf.d as shipped and no conf.d at all give the same: the conf.d shows
        // the init script's defaults.
        for with_conf_d in [true, false] {
            assert_eq!(
                openrc_args(shell, with_conf_d, ""),
                expected,
                "{shell}, conf.d: {with_conf_d}"
            );
            assert_eq!(
                openrc(shell, with_conf_d, "", show),
                [
                    "command=/usr/bin/package-cache",
                    "command_user=package-cache:portage",
                    "command_background=yes",
                    "pidfile=/run/package-cache.pid",
                    "directory=/usr/portage",
                    "need net",
                    "use dns logger",
                ],
                "{shell}, conf.d: {with_conf_d}"
            );
        }
    }
}

#[test]
fn openrc_sources_become_one_source_flag_each() {
    let overrides = r#"
SOURCES="  https://distfiles.gentoo.org
	http://mirror.example.org/gentoo?x=*  "
HOST="::"
PORT=4001
CACHE_DIR="/srv/pc cache/it's"
PC_OPTS="--threads 8 --mutable 'snap shots/*.txt' -v"
"#;
    for shell in shells() {
        assert_eq!(
            openrc_args(shell, true, overrides),
            [
                "--syslog",
                "--host",
                "::",
                "--port",
                "4001",
                "--source",
                "https://distfiles.gentoo.org",
                "--source",
                "http://mirror.example.org/gentoo?x=*",
                "--cache",
                "/srv/pc cache/it's",
                "--threads",
                "8",
                "--mutable",
                "snap shots/*.txt",
                "-v",
            ],
            "{shell}"
        );
    }
}

#[test]
fn openrc_sources_take_prefixed_and_plain_forms() {
    let overrides = r#"
SOURCES="https://distfiles.gentoo.org
         /debian=http://deb.debian.org/debian
         /archlinux=https://geo.mirror.pkgbuild.com /debian=http://ftp.example.org/debian"
"#;
    for shell in shells() {
        let args = openrc_args(shell, true, overrides);
        let sources: Vec<&str> = args
            .windows(2)
            .filter(|w| w[0] == "--source")
            .map(|w| w[1].as_str())
            .collect();
        assert_eq!(
            sources,
            [
                "https://distfiles.gentoo.org",
                "/debian=http://deb.debian.org/debian",
                "/archlinux=https://geo.mirror.pkgbuild.com",
                "/debian=http://ftp.example.org/debian",
            ],
            "{shell}"
        );
        assert_binary_accepts(&args, &format!("{shell}: prefixed SOURCES"));
    }
    // The conf.d's own example is one the binary accepts.
    let conf = read(CONF_D);
    let example: Vec<&str> = conf
        .lines()
        .skip_while(|l| !l.contains("/PREFIX=URL"))
        .skip(2)
        .take_while(|l| l.starts_with("#  "))
        .map(|l| l.trim_start_matches('#').trim())
        .collect();
    let example = example.join(" ");
    assert!(
        example.starts_with("SOURCES=\"") && example.contains("/debian="),
        "{example}"
    );
    let args = openrc_args("sh", true, &example);
    assert!(
        args.iter().any(|a| a.starts_with("/archlinux=")),
        "{args:?}"
    );
    assert_binary_accepts(&args, "the conf.d's SOURCES example");
}

#[test]
fn openrc_repos_become_one_repo_flag_each() {
    let overrides = "REPOS=\"/var/db/repos/gentoo  /var/db/repos/my overlay\"\n";
    for shell in shells() {
        let args = openrc_args(shell, true, overrides);
        let repos: Vec<_> = args
            .windows(2)
            .filter(|w| w[0] == "--repo")
            .map(|w| w[1].as_str())
            .collect();
        assert_eq!(
            repos,
            ["/var/db/repos/gentoo", "/var/db/repos/my", "overlay"],
            "{shell}: one --repo per word, as SOURCES"
        );
    }
}

#[test]
fn openrc_start_pre_creates_a_missing_cache_dir_only() {
    let tmp = TempDir::new("openrc");
    let cache = tmp.path().join("parent/cache");
    let overrides = format!("CACHE_DIR='{}'\nPC_USER=pc\nPC_GROUP=pcg", cache.display());
    let body = r#"
checkpath() { echo "checkpath $*"; mkdir "$4"; }
start_pre || echo "start_pre failed"
start_pre || echo "start_pre failed"
"#;
    for shell in shells() {
        let _ = std::fs::remove_dir_all(tmp.path().join("parent"));
        assert_eq!(
            openrc(shell, true, &overrides, body),
            [format!("checkpath -d -o pc:pcg {}", cache.display())],
            "{shell}: created once, then left alone"
        );
        assert!(cache.is_dir());
    }
}

#[test]
fn systemd_unit() {
    let unit = read(UNIT);
    let entries = parse_unit(&unit);
    for section in ["Unit", "Service", "Install"] {
        assert!(
            entries.iter().any(|(s, _, _)| s == section),
            "{UNIT}: no [{section}]"
        );
    }
    let service = |key: &str| {
        let v = unit_values(&entries, "Service", key);
        assert_eq!(v.len(), 1, "{UNIT}: one {key}=: {v:?}");
        v[0].clone()
    };
    let args = exec_start();
    assert_eq!(args[0], "/usr/bin/package-cache");
    assert!(
        !args.iter().any(|a| a == "--syslog"),
        "stderr goes to the journal; no --syslog"
    );
    // The same user and group as the OpenRC defaults.
    assert_eq!(service("User"), "package-cache");
    assert_eq!(service("Group"), "portage");
    // The cache directory is the one systemd creates, and writable.
    let cache = value_of(&args, "--cache");
    assert_eq!(cache, format!("/var/cache/{}", service("CacheDirectory")));
    assert!(
        service("ReadWritePaths")
            .split_whitespace()
            .any(|p| p == cache),
        "{UNIT}: ReadWritePaths does not hold {cache}"
    );
    // Longer than the server's default shutdown grace of 10 s.
    let stop: u64 = service("TimeoutStopSec")
        .parse()
        .expect("TimeoutStopSec in s");
    assert!(stop > 10, "TimeoutStopSec={stop}");

    let Some(analyze) = on_path("systemd-analyze") else {
        eprintln!("skipped systemd-analyze verify: not on PATH");
        return;
    };
    // verify checks that ExecStart's program exists: point it at the binary under test.
    let tmp = TempDir::new("systemd");
    let copy = tmp.path().join("package-cache.service");
    let bin = binary_path().to_str().expect("a UTF-8 path");
    std::fs::write(&copy, unit.replace("/usr/bin/package-cache", bin)).unwrap();
    let out = run(Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&copy)
        .current_dir(tmp.path()));
    let report = text(&out.stdout) + &text(&out.stderr);
    let about_unit: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("package-cache.service"))
        .collect();
    assert!(
        about_unit.is_empty(),
        "systemd-analyze verify: {}",
        about_unit.join("\n")
    );
    if !out.status.success() {
        eprintln!("skipped systemd-analyze verify: it cannot run here: {report}");
    }
}

#[test]
fn every_flag_is_one_the_binary_accepts() {
    let help = help_flags();
    let mut used: Vec<(String, &str, bool)> = Vec::new();
    for file in [INIT_D, CONF_D, UNIT] {
        for line in read(file).lines() {
            let trimmed = line.trim();
            let comment = trimmed.strip_prefix('#');
            let example = comment.is_some_and(|c| {
                let c = c.trim();
                c.contains("PC_OPTS=") || c.contains("package-cache --") || c.starts_with("--")
            });
            if comment.is_none() || example {
                for flag in flags(trimmed) {
                    used.push((flag, file, comment.is_some()));
                }
            }
        }
    }
    for needed in ["--syslog", "--host", "--port", "--cache", "--source"] {
        assert!(
            used.iter().any(|(f, _, _)| f == needed),
            "{needed} not found in the service files"
        );
    }
    let mut missing = Vec::new();
    for (flag, file, _commented) in &used {
        if !help.contains(flag) {
            missing.push(format!("{file}: {flag}"));
        }
    }
    assert!(
        missing.is_empty(),
        "flags the binary does not know: {missing:?}"
    );
}

#[test]
fn the_service_command_lines_parse() {
    assert_binary_accepts(&exec_start()[1..], "the systemd unit's ExecStart");
    let defaults = openrc_args("sh", true, "");
    assert_binary_accepts(&defaults, "the init script's defaults");
    let help = help_flags();
    for example in pc_opts_examples() {
        let pending: Vec<String> = flags(&example)
            .into_iter()
            .filter(|f| !help.contains(f))
            .collect();
        if !pending.is_empty() {
            eprintln!("note: skipped PC_OPTS=\"{example}\": {pending:?} not in --help yet");
            continue;
        }
        let args = openrc_args("sh", true, &format!("PC_OPTS=\"{example}\""));
        assert_eq!(args[..DEFAULT_ARGS.len()], DEFAULT_ARGS);
        assert_binary_accepts(&args, &format!("PC_OPTS=\"{example}\""));
    }
}
