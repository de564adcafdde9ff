//! Running the real `package-cache` binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// Where the binary under test is (for a script or a unit file that runs it).
pub fn binary_path() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_package-cache"))
}

/// The binary under test.
pub fn binary() -> Command {
    Command::new(binary_path())
}

/// Runs the binary with `args` to its end: its exit code (-1 if a signal ended it),
/// stdout and stderr.
pub fn output(args: &[&str]) -> (i32, String, String) {
    let out = binary().args(args).output().expect("run package-cache");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port nobody listens on right now (bound and released), for [`Process::start_on`].
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

/// A running `package-cache` process; killed on drop.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    lines: Receiver<String>,
    pub log: Vec<String>,
}

impl Process {
    /// Starts the binary with `args` (plus `--port 0 -v`) and waits for it to listen.
    pub fn start(args: &[&str]) -> Process {
        Process::start_env(args, &[])
    }

    /// Like [`Process::start`], with extra environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Process {
        Process::spawn(args, env, 0)
    }

    /// Like [`Process::start`], on a given port (from [`free_port`]): for a process
    /// whose address another one must know before it starts.
    pub fn start_on(port: u16, args: &[&str]) -> Process {
        Process::spawn(args, &[], port)
    }

    fn spawn(args: &[&str], env: &[(&str, &str)], port: u16) -> Process {
        let port = port.to_string();
        let mut child = binary()
            .envs(env.iter().copied())
            .args(args)
            .args(["--host", "127.0.0.1", "--port", &port, "-v"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn package-cache");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Process {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            lines: rx,
            log: Vec::new(),
        };
        let line = p
            .wait_for_line("serving http://", Duration::from_secs(10))
            .expect("the server announces its address");
        let rest = &line[line.find("serving http://").unwrap() + "serving http://".len()..];
        p.addr = rest.split('/').next().unwrap().parse().expect("address");
        p
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return Some(l.clone());
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Everything logged so far (and until the pipe is drained).
    pub fn drain_log(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.log.push(line);
        }
        self.log.clone()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
