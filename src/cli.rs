//! The command line: the Python original's flags, plus ours.
//!
//! argh is strict where users are not: it wants `--port 4000` and `-v -v`. So the
//! arguments are first normalised: `--flag=value` becomes `--flag value` and `-vv`
//! becomes `-v -v`. Bad values end the program with one line naming the flag and
//! the value.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;

use crate::cache::policy::Glob;
use crate::cache::upstream::check_source;
use crate::config::Config;

/// A caching proxy for package downloads: point GENTOO_MIRRORS (or a binhost, or a
/// snapshot mirror) at it; the first request for a file fetches it from a source while
/// streaming it to the client and storing it, later ones are served from disk.
#[derive(FromArgs, Debug)]
#[argh(help_triggers("-h", "--help"))]
struct Args {
    /// upstream mirror URL, tried in order; repeat for more (default
    /// https://distfiles.gentoo.org)
    #[argh(option, arg_name = "URL")]
    source: Vec<String>,

    /// host name or address to listen on; "::" or "0.0.0.0" for all (default localhost)
    #[argh(option, arg_name = "HOSTNAME", default = "String::from(\"localhost\")")]
    host: String,

    /// port to listen on (default 4000)
    #[argh(option, arg_name = "INT", default = "4000")]
    port: u16,

    /// cache directory (default /tmp/package-cache)
    #[argh(
        option,
        arg_name = "PATH",
        default = "PathBuf::from(\"/tmp/package-cache\")"
    )]
    cache: PathBuf,

    /// log more: -v shows every request, -vv upstream requests too (repeatable)
    #[argh(switch, short = 'v')]
    verbose: u8,

    /// log to the system log (facility daemon) instead of stderr
    #[argh(switch)]
    syslog: bool,

    /// print the version and exit
    #[argh(switch)]
    version: bool,

    /// requests served at once; each download to a client holds one (default 256)
    #[argh(option, arg_name = "N", default = "256", from_str_fn(positive))]
    threads: usize,

    /// seconds to wait for a source to accept a connection (default 10)
    #[argh(option, arg_name = "SECS", default = "10", from_str_fn(seconds))]
    connect_timeout: u64,

    /// seconds a source may stay silent before it counts as failed (default 60)
    #[argh(option, arg_name = "SECS", default = "60", from_str_fn(seconds))]
    read_timeout: u64,

    /// seconds a client connection may stay silent before it is closed (default 60)
    #[argh(option, arg_name = "SECS", default = "60", from_str_fn(seconds))]
    idle_timeout: u64,

    /// seconds a client may take to accept data before it is dropped (default 60)
    #[argh(option, arg_name = "SECS", default = "60", from_str_fn(seconds))]
    send_timeout: u64,

    /// a file that changes in place, besides layout.conf, Packages, *-latest.* and
    /// latest-*.txt; a glob on the name, or on the path if it has a / (repeatable)
    #[argh(option, arg_name = "GLOB")]
    mutable: Vec<String>,

    /// seconds a copy of a file that changes in place is served before asking the
    /// source again (default 60)
    #[argh(option, arg_name = "SECS", default = "60", from_str_fn(seconds))]
    mutable_ttl: u64,

    /// seconds downloads in progress get to finish after SIGTERM (default 10)
    #[argh(option, arg_name = "SECS", default = "10", from_str_fn(seconds))]
    shutdown_grace: u64,
}

fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a whole number above 0".into()),
    }
}

fn seconds(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| "expected a whole number of seconds".into())
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the server.
    Serve(Config),
    /// Print this text to stdout and exit successfully (`--help`, `--version`).
    Print(String),
}

/// A command line that cannot be run: the message names the flag and the value.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let args = normalise(args);
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let parsed = match Args::from_args(&["package-cache"], &strs) {
        Ok(a) => a,
        Err(exit) if exit.status.is_ok() => {
            let mut text = exit.output;
            if !text.ends_with('\n') {
                text.push('\n');
            }
            return Ok(Command::Print(text));
        }
        Err(exit) => {
            let first = exit
                .output
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim();
            return Err(UsageError(lowercase_first(first)));
        }
    };
    if parsed.version {
        return Ok(Command::Print(format!(
            "package-cache {}\n",
            env!("CARGO_PKG_VERSION")
        )));
    }
    for s in &parsed.source {
        check_source(s).map_err(|e| UsageError(e.to_string()))?;
    }
    for g in &parsed.mutable {
        Glob::new(g).map_err(UsageError)?;
    }
    Ok(Command::Serve(Config {
        sources: parsed.source,
        host: parsed.host,
        port: parsed.port,
        cache: parsed.cache,
        verbose: parsed.verbose,
        syslog: parsed.syslog,
        threads: parsed.threads,
        connect_timeout: Duration::from_secs(parsed.connect_timeout),
        read_timeout: Duration::from_secs(parsed.read_timeout),
        idle_timeout: Duration::from_secs(parsed.idle_timeout),
        send_timeout: Duration::from_secs(parsed.send_timeout),
        shutdown_grace: Duration::from_secs(parsed.shutdown_grace),
        mutable: parsed.mutable,
        mutable_ttl: Duration::from_secs(parsed.mutable_ttl),
    }))
}

/// argh capitalises its messages; ours are lower-case.
fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `--flag=value` → `--flag value`; `-vvv` → `-v -v -v`. Stops at `--`.
fn normalise(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut rest = false;
    for a in args {
        if rest {
            out.push(a.clone());
        } else if a == "--" {
            rest = true;
            out.push(a.clone());
        } else if let Some((flag, value)) = a.strip_prefix("--").and_then(|f| f.split_once('=')) {
            out.push(format!("--{flag}"));
            out.push(value.to_owned());
        } else if a.len() > 2 && a.starts_with("-v") && a[1..].bytes().all(|b| b == b'v') {
            out.extend(std::iter::repeat_n("-v".to_owned(), a.len() - 1));
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// The program: parse the command line, then run.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok(Command::Print(text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Command::Serve(config)) => crate::app::run(config),
        Err(e) => {
            eprintln!("package-cache: {e}");
            eprintln!("Run package-cache --help for usage.");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn config(s: &str) -> Config {
        match parse(&args(s)) {
            Ok(Command::Serve(c)) => c,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_python_original() {
        let c = config("");
        assert_eq!(c, Config::default());
        assert_eq!((c.host.as_str(), c.port), ("localhost", 4000));
        assert_eq!(c.cache, PathBuf::from("/tmp/package-cache"));
        assert!(c.sources.is_empty());
    }

    #[test]
    fn flags_in_every_spelling() {
        let c = config(
            "--source http://a --source=https://b/ --port=4001 --host :: -vv --cache=/srv/c --syslog",
        );
        assert_eq!(c.sources, ["http://a", "https://b/"]);
        assert_eq!(
            (c.port, c.host.as_str(), c.verbose, c.syslog),
            (4001, "::", 2, true)
        );
        assert_eq!(c.cache, PathBuf::from("/srv/c"));
        assert_eq!(config("-v -v -v").verbose, 3);
        assert_eq!(config("--verbose -v").verbose, 2);
        assert_eq!(
            config("--idle-timeout 5 --threads 8").idle_timeout,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn bad_values_name_the_flag_and_value() {
        let err = |s: &str| parse(&args(s)).unwrap_err().0;
        assert_eq!(
            err("--port x"),
            "error parsing option '--port' with value 'x': invalid digit found in string"
        );
        assert!(err("--port 70000").contains("'--port' with value '70000'"));
        assert_eq!(
            err("--source ftp://x"),
            "--source ftp://x: not an http:// or https:// URL"
        );
        assert!(err("--threads 0").contains("'--threads' with value '0'"));
        assert!(err("--bogus").contains("--bogus"));
        assert!(err("--mutable /abs").starts_with("--mutable /abs: "));
    }

    #[test]
    fn version_and_help() {
        let Ok(Command::Print(v)) = parse(&args("--version")) else {
            panic!()
        };
        assert_eq!(v, format!("package-cache {}\n", env!("CARGO_PKG_VERSION")));
        for h in ["-h", "--help"] {
            let Ok(Command::Print(text)) = parse(&args(h)) else {
                panic!("{h}")
            };
            assert!(
                text.contains("--source") && text.contains("default 4000"),
                "{text}"
            );
        }
    }

    #[test]
    fn normalise_leaves_values_alone() {
        assert_eq!(
            normalise(&args("--x=a=b -vvv -x -- --y=z")),
            args("--x a=b -v -v -v -x -- --y=z")
        );
    }
}
