//! Real servers the tests run as children (nginx, HAProxy; found with
//! [`super::tools::require_tool`]): started in a process group of their own, and
//! stopped with everything they forked when the test is done with them.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_until;

/// A server running as a child in its own process group. Dropping it stops the whole
/// group (a master and its workers): SIGTERM, then SIGKILL to what is left after 5 s.
/// Stopping only the process the test started would leave nginx's workers running,
/// still answering on the test's port.
pub struct Daemon {
    child: Child,
}

impl Daemon {
    /// Starts `cmd` (stdin from /dev/null; stdout and stderr as `cmd` says) in a new
    /// process group. The server gets SIGTERM if the thread that started it ends
    /// first (the test panicked past its drop, or the test binary was killed), so a
    /// run that dies leaves nothing behind either: start it from the test's thread.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Daemon> {
        cmd.stdin(Stdio::null()).process_group(0);
        // SAFETY: prctl(2) is async-signal-safe and touches only the new process.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(Daemon {
            child: cmd.spawn()?,
        })
    }

    /// Whether the process the test started has exited, and how (its code, or the
    /// signal that ended it). It stays a zombie until the drop, so its process
    /// group stays the test's to signal.
    pub fn exited(&self) -> Option<String> {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter; waitid(2) with WNOWAIT
        // on our own child leaves it to be reaped later.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(
                libc::P_PID,
                self.child.id(),
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            if r != 0 || info.si_pid() == 0 {
                return None;
            }
            Some(match info.si_code {
                libc::CLD_EXITED => format!("exit status {}", info.si_status()),
                _ => format!("signal {}", info.si_status()),
            })
        }
    }
}

impl Drop for Daemon {
    /// SIGTERM to the group (nginx's and HAProxy's fast shutdown), then SIGKILL to the
    /// group once the master has exited or after 5 s, for workers that outlive it.
    /// The master is reaped last, so the group id cannot be anybody else's meanwhile.
    fn drop(&mut self) {
        let group = -(self.child.id() as i32);
        // SAFETY: kill(2) on the process group of our own child, not yet reaped.
        unsafe { libc::kill(group, libc::SIGTERM) };
        wait_until(Duration::from_secs(5), || self.exited().is_some());
        // SAFETY: as above.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
