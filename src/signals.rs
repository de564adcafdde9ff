//! SIGTERM and SIGINT: the first asks the server to stop gracefully, a second one ends
//! the process at once.
//!
//! The signal handler only writes a byte to a pipe (async-signal-safe); a thread reads
//! the pipe and does the work.

use std::io::{self, Read};
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread;

use log::{info, warn};

use crate::http::ShutdownHandle;

static PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a live local.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Routes SIGTERM and SIGINT to `handle`: the first one shuts the server down, the
/// second exits immediately with status 1.
pub fn shutdown_on_signals(handle: ShutdownHandle) -> io::Result<()> {
    let (mut reader, writer) = UnixStream::pair()?;
    PIPE.store(writer.into_raw_fd(), Ordering::SeqCst);
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: sigaction is plain data; the handler only calls write(2).
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            let mut seen = 0;
            while reader.read_exact(&mut byte).is_ok() {
                seen += 1;
                let name = if i32::from(byte[0]) == libc::SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                if seen == 1 {
                    info!("{name}: finishing responses in progress, then stopping");
                    handle.shutdown();
                } else {
                    warn!("{name} again: stopping now");
                    std::process::exit(1);
                }
            }
        })?;
    Ok(())
}
