//! A throwaway OpenPGP signing key in its own GNUPGHOME (never the user's keyring),
//! and what a repository needs from it: signatures and the public key for clients.

use std::path::{Path, PathBuf};

use super::tool::{command, run};

/// An ed25519 signing key without passphrase; its gpg-agent is stopped on drop.
pub struct Key {
    home: PathBuf,
    fingerprint: String,
}

impl Key {
    /// Generates a key in `dir/gnupg`.
    pub fn generate(dir: &Path) -> Key {
        let home = dir.join("gnupg");
        std::fs::create_dir_all(&home).expect("create GNUPGHOME");
        set_private(&home);
        let mut key = Key {
            home,
            fingerprint: String::new(),
        };
        key.gpg(&[
            "--passphrase",
            "",
            "--quick-gen-key",
            "package-cache test <test@example.invalid>",
            "ed25519",
            "sign",
            "never",
        ]);
        let listing = key.gpg(&["--list-secret-keys", "--with-colons"]).stdout;
        key.fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.split(':').find(|f| f.len() == 40))
            .expect("a fingerprint")
            .to_owned();
        key
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The GNUPGHOME holding the secret key (repo-add signs through it).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The public key, binary (`armor` false: what apt's `signed-by=` reads from a
    /// `.gpg` file) or ASCII-armoured.
    pub fn public(&self, armor: bool) -> Vec<u8> {
        // Through a file: binary output would not survive the captured (text) stdout.
        let out = self.home.join("exported");
        let out_arg = out.to_string_lossy().into_owned();
        let mut args = vec!["--yes", "--output", &out_arg];
        if armor {
            args.push("--armor");
        }
        args.extend(["--export", &self.fingerprint]);
        self.gpg(&args);
        std::fs::read(&out).expect("exported key")
    }

    /// Writes `input`'s clear-signed form to `output` (InRelease from Release).
    pub fn clearsign(&self, input: &Path, output: &Path) {
        self.gpg(&[
            "--yes",
            "--local-user",
            &self.fingerprint,
            "--clearsign",
            "--output",
            &output.to_string_lossy(),
            &input.to_string_lossy(),
        ]);
    }

    /// Writes a detached signature of `input` to `output`, ASCII-armoured or binary.
    pub fn detach_sign(&self, input: &Path, output: &Path, armor: bool) {
        let mut args = vec![
            "--yes".to_owned(),
            "--local-user".to_owned(),
            self.fingerprint.clone(),
            "--detach-sign".to_owned(),
        ];
        if armor {
            args.push("--armor".to_owned());
        }
        args.extend([
            "--output".to_owned(),
            output.to_string_lossy().into_owned(),
            input.to_string_lossy().into_owned(),
        ]);
        self.gpg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    fn gpg(&self, args: &[&str]) -> super::tool::Run {
        run(command("gpg", &self.home)
            .arg("--homedir")
            .arg(&self.home)
            .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
            .args(args))
        .expect_ok()
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        stop_agent(&self.home);
    }
}

/// A keyring for a client that verifies with `key` (pacman's `--gpgdir`): the public
/// key imported and trusted ultimately, as `pacman-key --lsign-key` would make it
/// valid. Written to `dir`.
pub fn trusting_keyring(key: &Key, dir: &Path) {
    std::fs::create_dir_all(dir).expect("create keyring dir");
    set_private(dir);
    // pacman looks for pubring.gpg; with it present gpg keeps the keyring there.
    std::fs::write(dir.join("pubring.gpg"), b"").expect("pubring.gpg");
    std::fs::write(dir.join("gpg.conf"), "no-greeting\nno-permission-warning\n").unwrap();
    let public = dir.join("signer.asc");
    std::fs::write(&public, key.public(true)).expect("write public key");
    let gpg = |args: &[&str]| {
        run(command("gpg", dir)
            .arg("--homedir")
            .arg(dir)
            .args(["--batch", "--no-tty"])
            .args(args))
        .expect_ok()
    };
    gpg(&["--import", &public.to_string_lossy()]);
    let trust = dir.join("ownertrust.txt");
    std::fs::write(&trust, format!("{}:6:\n", key.fingerprint())).unwrap();
    gpg(&["--import-ownertrust", &trust.to_string_lossy()]);
}

/// Stops any gpg-agent or dirmngr started for `home`, so no daemon outlives a test.
pub fn stop_agent(home: &Path) {
    let _ = std::process::Command::new("gpgconf")
        .arg("--homedir")
        .arg(home)
        .args(["--kill", "all"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

fn set_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}
