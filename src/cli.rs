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

use crate::cache::cull::CullOptions;
use crate::cache::policy::Glob;
use crate::config::Config;
use crate::gentoo::repo::cull::UnreferencedOptions;
use crate::gentoo::repo::digest::Algo;
use crate::http::access::Cidr;

/// A caching proxy for package downloads: point GENTOO_MIRRORS (or a binhost, or a
/// snapshot mirror) at it; the first request for a file fetches it from a source while
/// streaming it to the client and storing it, later ones are served from disk.
#[derive(FromArgs, Debug)]
#[argh(help_triggers("-h", "--help"))]
struct Args {
    /// upstream mirror URL, tried in order; repeat for more (default
    /// https://distfiles.gentoo.org); /PREFIX=URL serves only the paths below /PREFIX
    /// (asked without it; the longest prefix wins), e.g.
    /// /debian=http://deb.debian.org/debian
    #[argh(option, arg_name = "URL")]
    source: Vec<String>,

    /// host name or address to listen on; "::" or "0.0.0.0" for all (default localhost)
    #[argh(option, arg_name = "HOSTNAME")]
    host: Option<String>,

    /// port to listen on (default 4000)
    #[argh(option, arg_name = "INT")]
    port: Option<u16>,

    /// this instance's name in Via headers, which stop loops between chained caches;
    /// unique among them (default the host name and port, e.g. cache1:4000)
    #[argh(option, arg_name = "NAME")]
    name: Option<String>,

    /// cache directory (default /tmp/package-cache)
    #[argh(option, arg_name = "PATH")]
    cache: Option<PathBuf>,

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
    #[argh(option, arg_name = "N", from_str_fn(positive))]
    threads: Option<usize>,

    /// seconds to wait for a source to accept a connection (default 10)
    #[argh(option, arg_name = "SECS", from_str_fn(seconds))]
    connect_timeout: Option<Duration>,

    /// seconds a source may stay silent before it counts as failed (default 60)
    #[argh(option, arg_name = "SECS", from_str_fn(seconds))]
    read_timeout: Option<Duration>,

    /// seconds a client connection may stay silent before it is closed (default 60)
    #[argh(option, arg_name = "SECS", from_str_fn(seconds))]
    idle_timeout: Option<Duration>,

    /// seconds a client may take to accept data before it is dropped (default 60)
    #[argh(option, arg_name = "SECS", from_str_fn(seconds))]
    send_timeout: Option<Duration>,

    /// a file that changes in place, besides the built-in table (the indexes of Debian,
    /// Arch, RPM, Alpine, FreeBSD and Gentoo repositories), revalidated on its own; a
    /// glob on the name, or on the path if it has a / (repeatable)
    #[argh(option, arg_name = "GLOB")]
    mutable: Vec<String>,

    /// seconds a repository's anchor (InRelease, core.db, repomd.xml, Packages…), or a
    /// file that changes in place on its own, is served before asking the source
    /// again; its members are served from its generation (default 60)
    #[argh(option, arg_name = "SECS", from_str_fn(seconds))]
    mutable_ttl: Option<Duration>,

    /// seconds a file every source said it does not have is answered 404 without
    /// asking again; 0 asks every time (default 60)
    #[argh(option, arg_name = "SECS", from_str_fn(seconds))]
    negative_ttl: Option<Duration>,

    /// seconds downloads in progress get to finish after SIGTERM (default 10)
    #[argh(option, arg_name = "SECS", from_str_fn(seconds))]
    shutdown_grace: Option<Duration>,

    /// keep the cache under this size, evicting the least recently used files
    /// (K, M, G, T suffixes; default no limit)
    #[argh(option, arg_name = "SIZE", from_str_fn(size))]
    max_size: Option<u64>,

    /// only clients in this address range may connect, e.g. 192.168.0.0/16 or ::1
    /// (repeatable; default everyone)
    #[argh(option, arg_name = "CIDR", from_str_fn(cidr))]
    allow: Vec<Cidr>,

    /// send every upstream request through this proxy (default: http_proxy,
    /// https_proxy, all_proxy and no_proxy from the environment, as curl reads them)
    #[argh(option, arg_name = "URL")]
    upstream_proxy: Option<String>,

    /// a Gentoo ebuild repository (/var/db/repos/gentoo, then overlays): distfiles
    /// are checked against its Manifests and fetched from its SRC_URI when no source
    /// has them (repeatable; default none)
    #[argh(option, arg_name = "PATH")]
    repo: Vec<PathBuf>,

    /// the digests of Manifest and binhost Packages entries to check, as portage's
    /// PORTAGE_CHECKSUM_FILTER: BLAKE2B, SHA512, SHA1 separated by spaces or commas,
    /// or * for every one an entry lists (default *)
    #[argh(option, arg_name = "LIST", from_str_fn(checksums))]
    checksum_filter: Option<Vec<Algo>>,
}

/// Removes files from a cache directory: those not used for --older-than DAYS, then the
/// least recently used until the cache fits in --max-size. Prints each file removed.
#[derive(FromArgs, Debug)]
#[argh(help_triggers("-h", "--help"))]
struct CullArgs {
    /// cache directory (default /tmp/package-cache)
    #[argh(option, arg_name = "PATH")]
    cache: Option<PathBuf>,

    /// remove least recently used files until the cache is at most this size
    /// (K, M, G, T suffixes)
    #[argh(option, arg_name = "SIZE", from_str_fn(size))]
    max_size: Option<u64>,

    /// remove files not used for this many days
    #[argh(option, arg_name = "DAYS", from_str_fn(days))]
    older_than: Option<f64>,

    /// remove distfiles that no Manifest of the --repo repositories references
    #[argh(switch)]
    unreferenced: bool,

    /// a Gentoo ebuild repository for --unreferenced (repeatable)
    #[argh(option, arg_name = "PATH")]
    repo: Vec<PathBuf>,

    /// with --unreferenced, keep files used within this many days (default 7)
    #[argh(option, arg_name = "DAYS", from_str_fn(days))]
    grace: Option<f64>,

    /// only print what would be removed
    #[argh(switch)]
    dry_run: bool,
}

fn checksums(s: &str) -> Result<Vec<Algo>, String> {
    let mut out = Vec::new();
    for word in s.split([',', ' ']).filter(|w| !w.is_empty()) {
        let algo = match word.to_ascii_uppercase().as_str() {
            "*" => return Ok(Vec::new()),
            "BLAKE2B" => Algo::Blake2b,
            "SHA512" => Algo::Sha512,
            "SHA1" => Algo::Sha1,
            _ => return Err(format!("{word} is not one of BLAKE2B, SHA512, SHA1, *")),
        };
        if !out.contains(&algo) {
            out.push(algo);
        }
    }
    if out.is_empty() {
        return Err("no digest named".into());
    }
    Ok(out)
}

fn size(s: &str) -> Result<u64, String> {
    crate::size::parse(s).map_err(|e| e.to_string())
}

fn cidr(s: &str) -> Result<Cidr, String> {
    s.parse::<Cidr>().map_err(|e| e.to_string())
}

fn days(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(d) if (0.0..1e6).contains(&d) => Ok(d),
        _ => Err("expected a number of days, such as 30 or 0.5".into()),
    }
}

fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a whole number above 0".into()),
    }
}

fn seconds(s: &str) -> Result<Duration, String> {
    s.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| "expected a whole number of seconds".into())
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the server.
    Serve(Box<Config>),
    /// Print this text to stdout and exit successfully (`--help`, `--version`).
    Print(String),
    /// Remove files from a cache directory once (`package-cache cull …`).
    Cull {
        /// The cache directory.
        cache: PathBuf,
        /// What to remove.
        options: CullOptions,
    },
    /// Remove the distfiles no Manifest references (`package-cache cull --unreferenced
    /// --repo PATH …`), then what `then` says, if anything.
    CullUnreferenced {
        /// The cache directory.
        cache: PathBuf,
        /// The repositories whose Manifests count.
        repos: Vec<PathBuf>,
        /// The grace period and whether it is a dry run.
        options: UnreferencedOptions,
        /// A size or age cull to run after it (`--max-size`, `--older-than`).
        then: Option<CullOptions>,
    },
}

/// The default `--grace` of `cull --unreferenced`, in days.
pub const DEFAULT_GRACE_DAYS: f64 = 7.0;

/// A command line that cannot be run: the message names the flag and the value.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What argh made of the arguments: parsed, or text to print, or an error.
fn argh_parse<T: FromArgs>(
    command: &[&str],
    args: &[String],
) -> Result<Result<T, String>, UsageError> {
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    match T::from_args(command, &strs) {
        Ok(a) => Ok(Ok(a)),
        Err(exit) if exit.status.is_ok() => {
            let mut text = exit.output;
            if !text.ends_with('\n') {
                text.push('\n');
            }
            Ok(Err(text))
        }
        Err(exit) => {
            let first = exit
                .output
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim();
            Err(UsageError(lowercase_first(first)))
        }
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let args = normalise(args);
    if args.first().is_some_and(|a| a == "cull") {
        return parse_cull(&args[1..]);
    }
    let parsed: Args = match argh_parse(&["package-cache"], &args)? {
        Ok(a) => a,
        Err(text) => return Ok(Command::Print(add_subcommands(text))),
    };
    if parsed.version {
        return Ok(Command::Print(format!(
            "package-cache {}\n",
            env!("CARGO_PKG_VERSION")
        )));
    }
    for s in &parsed.source {
        crate::cache::prefix::parse(s).map_err(|e| UsageError(format!("--source {e}")))?;
    }
    for g in &parsed.mutable {
        Glob::new(g).map_err(|e| UsageError(format!("--mutable {e}")))?;
    }
    if let Some(n) = &parsed.name {
        crate::proto::via::check_name(n).map_err(|e| UsageError(format!("--name {n}: {e}")))?;
    }
    if let Some(p) = &parsed.upstream_proxy {
        check_proxy(p).map_err(|e| UsageError(format!("--upstream-proxy {p}: {e}")))?;
    }
    // Every default comes from Config::default(), written once; the help text states
    // them (a test checks that it agrees).
    let d = Config::default();
    Ok(Command::Serve(Box::new(Config {
        sources: parsed.source,
        host: parsed.host.unwrap_or(d.host),
        port: parsed.port.unwrap_or(d.port),
        name: parsed.name,
        cache: parsed.cache.unwrap_or(d.cache),
        verbose: parsed.verbose,
        syslog: parsed.syslog,
        threads: parsed.threads.unwrap_or(d.threads),
        connect_timeout: parsed.connect_timeout.unwrap_or(d.connect_timeout),
        read_timeout: parsed.read_timeout.unwrap_or(d.read_timeout),
        idle_timeout: parsed.idle_timeout.unwrap_or(d.idle_timeout),
        send_timeout: parsed.send_timeout.unwrap_or(d.send_timeout),
        shutdown_grace: parsed.shutdown_grace.unwrap_or(d.shutdown_grace),
        mutable: parsed.mutable,
        mutable_ttl: parsed.mutable_ttl.unwrap_or(d.mutable_ttl),
        negative_ttl: parsed.negative_ttl.unwrap_or(d.negative_ttl),
        max_size: parsed.max_size,
        allow: parsed.allow,
        upstream_proxy: parsed.upstream_proxy,
        upstream_env: d.upstream_env,
        repos: parsed.repo,
        checksum_filter: parsed.checksum_filter.unwrap_or(d.checksum_filter),
    })))
}

/// Parses `package-cache cull …`.
fn parse_cull(args: &[String]) -> Result<Command, UsageError> {
    let parsed: CullArgs = match argh_parse(&["package-cache cull"], args)? {
        Ok(a) => a,
        Err(text) => return Ok(Command::Print(text)),
    };
    if parsed.max_size.is_none() && parsed.older_than.is_none() && !parsed.unreferenced {
        return Err(UsageError(
            "cull: say what to remove with --max-size SIZE and/or --older-than DAYS, \
             or --unreferenced --repo PATH"
                .into(),
        ));
    }
    if parsed.unreferenced && parsed.repo.is_empty() {
        return Err(UsageError(
            "cull: --unreferenced needs the repositories whose Manifests count: --repo PATH".into(),
        ));
    }
    if !parsed.unreferenced && (!parsed.repo.is_empty() || parsed.grace.is_some()) {
        return Err(UsageError(
            "cull: --repo and --grace go with --unreferenced".into(),
        ));
    }
    let cache = parsed.cache.unwrap_or(Config::default().cache);
    let options = CullOptions {
        max_size: parsed.max_size,
        older_than: parsed
            .older_than
            .map(|d| Duration::from_secs_f64(d * 86_400.0)),
        dry_run: parsed.dry_run,
    };
    if !parsed.unreferenced {
        return Ok(Command::Cull { cache, options });
    }
    let grace = parsed.grace.unwrap_or(DEFAULT_GRACE_DAYS);
    let then = (options.max_size.is_some() || options.older_than.is_some()).then_some(options);
    Ok(Command::CullUnreferenced {
        cache,
        repos: parsed.repo,
        options: UnreferencedOptions {
            grace: Duration::from_secs_f64(grace * 86_400.0),
            dry_run: parsed.dry_run,
        },
        then,
    })
}

/// Runs `package-cache cull --unreferenced …`: reads the repositories once, removes
/// what no Manifest references, then runs the size or age cull if one was asked for.
fn cull_unreferenced(
    cache: &std::path::Path,
    repos: &[PathBuf],
    options: &UnreferencedOptions,
    then: Option<&CullOptions>,
) -> ExitCode {
    use crate::gentoo::repo::{RepoIndex, RepoOptions};
    for repo in repos {
        if !repo.is_dir() {
            eprintln!(
                "package-cache: --repo {}: not a readable directory",
                repo.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let index = match RepoIndex::load(repos, RepoOptions::default()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("package-cache: --repo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let culled = crate::gentoo::repo::cull::cull_unreferenced(cache, &index, options, &mut out);
    if let Err(e) = culled {
        eprintln!("package-cache: cull --unreferenced: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(then) = then
        && let Err(e) = crate::cache::cull::cull(cache, then, &mut out)
    {
        eprintln!("package-cache: --cache {}: {e}", cache.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Adds the `cull` command to the server's help text.
fn add_subcommands(mut help: String) -> String {
    help.push_str(
        "\nCommands:\n  cull              remove files from a cache directory once \
         (package-cache cull --help)\n",
    );
    help
}

/// A proxy URL must be `http://host[:port]` (or https, socks).
fn check_proxy(url: &str) -> Result<(), String> {
    let rest = [
        "http://",
        "https://",
        "socks4://",
        "socks4a://",
        "socks5://",
        "socks://",
    ]
    .iter()
    .find_map(|p| url.strip_prefix(p))
    .ok_or("expected a URL such as http://proxy:3128")?;
    if rest.trim_end_matches('/').is_empty() {
        return Err("the URL has no host".into());
    }
    Ok(())
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
        Ok(Command::Serve(config)) => crate::app::run(*config),
        Ok(Command::CullUnreferenced {
            cache,
            repos,
            options,
            then,
        }) => cull_unreferenced(&cache, &repos, &options, then.as_ref()),
        Ok(Command::Cull { cache, options }) => {
            let mut out = std::io::stdout().lock();
            match crate::cache::cull::cull(&cache, &options, &mut out) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("package-cache: --cache {}: {e}", cache.display());
                    ExitCode::FAILURE
                }
            }
        }
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
            Ok(Command::Serve(c)) => *c,
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
    fn the_help_text_states_the_defaults() {
        let Ok(Command::Print(help)) = parse(&args("--help")) else {
            panic!("no help")
        };
        let options = help.split("Options:").nth(1).unwrap_or_default();
        let help = options.split_whitespace().collect::<Vec<_>>().join(" ");
        let d = Config::default();
        let secs = |t: Duration| t.as_secs().to_string();
        for (flag, default) in [
            ("--host", d.host.clone()),
            ("--port", d.port.to_string()),
            ("--cache", d.cache.display().to_string()),
            ("--threads", d.threads.to_string()),
            ("--connect-timeout", secs(d.connect_timeout)),
            ("--read-timeout", secs(d.read_timeout)),
            ("--idle-timeout", secs(d.idle_timeout)),
            ("--send-timeout", secs(d.send_timeout)),
            ("--mutable-ttl", secs(d.mutable_ttl)),
            ("--negative-ttl", secs(d.negative_ttl)),
            ("--shutdown-grace", secs(d.shutdown_grace)),
        ] {
            let at = help.find(flag).unwrap_or_else(|| panic!("{flag} missing"));
            let next = help[at + flag.len()..]
                .find(" --")
                .map_or(help.len(), |n| at + flag.len() + n);
            assert!(
                help[at..next].contains(&format!("(default {default})")),
                "{flag}: {}",
                &help[at..next]
            );
        }
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
        assert_eq!(config("--name=site-a").name.as_deref(), Some("site-a"));
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
        assert_eq!(
            err("--name a,b"),
            "--name a,b: only letters, digits and - . _ : [ ] are allowed"
        );
        assert_eq!(
            err("--source /de/../bian=http://a"),
            "--source /de/../bian=http://a: the prefix is not a clean absolute path \
             (an empty, . or .. segment, or a \\)"
        );
        assert_eq!(
            err("--source /debian=ftp://a"),
            "--source /debian=ftp://a: not an http:// or https:// URL"
        );
        assert!(err("--source debian=http://a").contains("starts with /"));
    }

    #[test]
    fn prefixed_and_plain_sources_keep_their_order() {
        let c = config(
            "--source http://gentoo --source /debian=http://deb --source=/arch/=http://arch \
             --source /debian=http://deb2",
        );
        assert_eq!(
            c.sources,
            [
                "http://gentoo",
                "/debian=http://deb",
                "/arch/=http://arch",
                "/debian=http://deb2"
            ]
        );
        // Only prefixed sources: no default source for the other paths.
        assert_eq!(
            config("--source /debian=http://deb").effective_sources(),
            ["/debian=http://deb"]
        );
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
    fn repositories_and_checksum_filters() {
        let c = config("--repo /a --repo=/b --checksum-filter BLAKE2B,sha512");
        assert_eq!(c.repos, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(c.checksum_filter, [Algo::Blake2b, Algo::Sha512]);
        assert!(config("--checksum-filter *").checksum_filter.is_empty());
        let err = parse(&args("--checksum-filter MD5")).unwrap_err().0;
        assert!(err.contains("MD5 is not one of"), "{err}");
    }

    #[test]
    fn cull_unreferenced_needs_repositories() {
        let Ok(Command::CullUnreferenced {
            repos,
            options,
            then,
            ..
        }) = parse(&args("cull --unreferenced --repo /r --cache /c"))
        else {
            panic!("not an unreferenced cull")
        };
        assert_eq!(repos, [PathBuf::from("/r")]);
        assert_eq!(options.grace, Duration::from_secs(7 * 86_400));
        assert!(then.is_none() && !options.dry_run);
        let Ok(Command::CullUnreferenced { then, options, .. }) = parse(&args(
            "cull --unreferenced --repo /r --grace 0.5 --max-size 1G --dry-run",
        )) else {
            panic!()
        };
        assert_eq!(options.grace, Duration::from_secs(43_200));
        assert_eq!(
            then.map(|t| (t.max_size, t.dry_run)),
            Some((Some(1 << 30), true))
        );
        let err = |s: &str| parse(&args(s)).unwrap_err().0;
        assert!(err("cull --unreferenced").contains("--repo PATH"));
        assert!(err("cull --repo /r --max-size 1G").contains("go with --unreferenced"));
    }

    #[test]
    fn normalise_leaves_values_alone() {
        assert_eq!(
            normalise(&args("--x=a=b -vvv -x -- --y=z")),
            args("--x a=b -v -v -v -x -- --y=z")
        );
    }
}
