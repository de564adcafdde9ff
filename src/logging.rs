//! Logging to stderr or to syslog.
//!
//! Levels (as the Python original): warnings and errors by default; `-v` adds one
//! line per request (target `package_cache::access`) and start-up information; `-vv`
//! adds upstream requests, download progress and decisions; `-vvv` adds everything,
//! including the HTTP and TLS libraries. `RUST_LOG` (env_logger syntax) overrides.
//!
//! With `--syslog`, lines go to the local syslog socket (`/dev/log`) in RFC 3164 form,
//! `<PRI>package-cache[PID]: message`, facility daemon. If there is no syslog socket,
//! a note on stderr says so and logging stays on stderr.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The socket syslog daemons listen on.
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// The filter for `verbose` `-v` flags.
pub fn filter_for(verbose: u8) -> String {
    match verbose {
        0 => "warn".into(),
        1 => "warn,package_cache=info".into(),
        2 => "warn,package_cache=debug".into(),
        _ => "debug,package_cache=trace".into(),
    }
}

/// Installs the global logger. Safe to call more than once (later calls do nothing).
pub fn init(verbose: u8, syslog: bool) {
    let filters = std::env::var("RUST_LOG").unwrap_or_else(|_| filter_for(verbose));
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&filters);
    builder.format(|buf, record| {
        writeln!(
            buf,
            "{} {:<5} {}",
            crate::http::date::format_rfc3339(std::time::SystemTime::now()),
            record.level(),
            record.args()
        )
    });
    if syslog {
        match UnixDatagram::unbound().and_then(|s| s.connect(SYSLOG_SOCKET).map(|()| s)) {
            Ok(socket) => {
                let filter = builder.build();
                let max = filter.filter();
                let logger = Syslog {
                    filter,
                    socket: Mutex::new(socket),
                    pid: std::process::id(),
                };
                if log::set_boxed_logger(Box::new(logger)).is_ok() {
                    log::set_max_level(max);
                }
                return;
            }
            Err(e) => eprintln!(
                "package-cache: cannot reach syslog at {SYSLOG_SOCKET} ({e}); logging to stderr"
            ),
        }
    }
    let _ = builder.try_init();
}

/// A logger that sends RFC 3164 lines to the local syslog socket.
struct Syslog {
    filter: env_logger::Logger,
    socket: Mutex<UnixDatagram>,
    pid: u32,
}

/// Facility `daemon` (3), shifted as RFC 3164 wants.
const FACILITY_DAEMON: u8 = 3 << 3;

/// The syslog line for a record.
pub fn syslog_line(level: Level, pid: u32, message: &str) -> String {
    let severity = match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    };
    let message = message.replace(['\n', '\r'], " ");
    format!(
        "<{}>package-cache[{pid}]: {message}",
        FACILITY_DAEMON + severity
    )
}

impl Log for Syslog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        let line = syslog_line(record.level(), self.pid, &record.args().to_string());
        let socket = self
            .socket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if socket.send(line.as_bytes()).is_err() {
            // The daemon restarted: reconnect once.
            if socket.connect(SYSLOG_SOCKET).is_ok() {
                let _ = socket.send(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

/// The level filter for `verbose` without `RUST_LOG`, for tests and embedders.
pub fn level_for(verbose: u8) -> LevelFilter {
    match verbose {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_lines_follow_rfc_3164() {
        assert_eq!(
            syslog_line(Level::Warn, 42, "disk\nfull"),
            "<28>package-cache[42]: disk full"
        );
        assert_eq!(syslog_line(Level::Info, 1, "x"), "<30>package-cache[1]: x");
        assert_eq!(syslog_line(Level::Error, 1, "x"), "<27>package-cache[1]: x");
    }

    #[test]
    fn verbosity_levels() {
        assert_eq!(filter_for(0), "warn");
        assert_eq!(level_for(1), LevelFilter::Info);
        assert_eq!(level_for(9), LevelFilter::Trace);
    }

    #[test]
    fn lines_reach_a_syslog_socket() {
        let path = std::env::temp_dir().join(format!("pc-syslog-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        let client = UnixDatagram::unbound().unwrap();
        client.connect(&path).unwrap();
        let mut builder = env_logger::Builder::new();
        builder.parse_filters("info");
        let logger = Syslog {
            filter: builder.build(),
            socket: Mutex::new(client),
            pid: 7,
        };
        logger.log(
            &Record::builder()
                .level(Level::Info)
                .args(format_args!("hello"))
                .build(),
        );
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<30>package-cache[7]: hello");
        let _ = std::fs::remove_file(&path);
    }
}
