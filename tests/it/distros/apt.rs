//! Debian: a repository made with `dpkg-deb` and `apt-ftparchive` (`Packages`, `.gz`,
//! `.xz`, `Release`, a clear-signed `InRelease` and `Release.gpg` from a throwaway key;
//! optionally `Acquire-By-Hash: yes` with `by-hash/SHA256/…` copies that outlive their
//! generation, as on Debian's mirrors), and the real `apt-get`/`apt-cache` with every
//! directory in a temporary one.

use std::path::{Path, PathBuf};

use super::gpg::Key;
use super::repo::{Client, Clock, PACKAGE, Repo};
use super::tool::{Run, command, run};
use crate::support::TempDir;

const SUITE: &str = "stable";
const COMPONENT: &str = "main";

/// An apt repository at `ORIGIN/prefix` with suite `stable`, component `main`.
pub struct AptRepo {
    name: String,
    key: Key,
    prefix: String,
    dir: PathBuf,
    by_hash: bool,
    clock: Clock,
    version: u32,
    work: TempDir,
}

impl AptRepo {
    /// An empty repository under `root` (the origin's document root) at `prefix`;
    /// `by_hash` adds `Acquire-By-Hash: yes` and the `by-hash/` files.
    pub fn create(root: &Path, prefix: &str, by_hash: bool) -> AptRepo {
        let work = TempDir::new("apt-repo");
        let dir = root.join(prefix.trim_start_matches('/'));
        std::fs::create_dir_all(dir.join(format!("dists/{SUITE}/{COMPONENT}/binary-amd64")))
            .unwrap();
        AptRepo {
            name: if by_hash { "apt by-hash" } else { "apt" }.into(),
            key: Key::generate(work.path()),
            prefix: prefix.into(),
            dir,
            by_hash,
            clock: Clock::new(),
            version: 0,
            work,
        }
    }

    fn suite(&self) -> PathBuf {
        self.dir.join("dists").join(SUITE)
    }

    fn deb(&self, version: &str) -> PathBuf {
        self.dir.join(format!(
            "pool/{COMPONENT}/h/{PACKAGE}/{PACKAGE}_{version}_all.deb"
        ))
    }

    fn tool(&self, program: &str) -> std::process::Command {
        let mut cmd = command(program, self.work.path());
        cmd.current_dir(&self.dir);
        cmd
    }

    fn build_deb(&self, version: &str) {
        let tree = self.work.path().join(format!("deb-{version}"));
        let doc = tree.join(format!("usr/share/doc/{PACKAGE}"));
        std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(&doc).unwrap();
        std::fs::write(
            tree.join("DEBIAN/control"),
            format!(
                "Package: {PACKAGE}\nVersion: {version}\nArchitecture: all\n\
                 Maintainer: package-cache tests <test@example.invalid>\n\
                 Description: package-cache's test package\n"
            ),
        )
        .unwrap();
        std::fs::write(doc.join("version"), format!("{version}\n")).unwrap();
        let deb = self.deb(version);
        std::fs::create_dir_all(deb.parent().unwrap()).unwrap();
        run(self
            .tool("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(&tree)
            .arg(&deb))
        .expect_ok();
    }

    /// `Packages`, `Packages.gz`, `Packages.xz` for every .deb in the pool (all
    /// versions, as a suite briefly lists while old ones age out: the candidate is
    /// the newest).
    fn write_indexes(&self) {
        let binary = self.suite().join(format!("{COMPONENT}/binary-amd64"));
        let packages = run(self
            .tool("apt-ftparchive")
            .args(["packages", &format!("pool/{COMPONENT}")]))
        .expect_ok()
        .stdout;
        std::fs::write(binary.join("Packages"), &packages).unwrap();
        for (program, ext) in [("gzip", "gz"), ("xz", "xz")] {
            let mut cmd = self.tool(program);
            cmd.args(["-9", "-c"]);
            if program == "gzip" {
                cmd.arg("-n");
            }
            cmd.arg(binary.join("Packages"));
            let out = cmd
                .stdout(std::process::Stdio::piped())
                .output()
                .expect("compress");
            assert!(out.status.success(), "{program} failed");
            std::fs::write(binary.join(format!("Packages.{ext}")), out.stdout).unwrap();
        }
    }

    /// `Release` (MD5Sum and SHA256, as Debian's), then `InRelease` and `Release.gpg`.
    fn write_release(&self) {
        let field = |f: &str, v: &str| format!("-oAPT::FTPArchive::Release::{f}={v}");
        let release = run(self
            .tool("apt-ftparchive")
            .arg(field("Origin", "package-cache tests"))
            .arg(field("Suite", SUITE))
            .arg(field("Codename", SUITE))
            .arg(field("Components", COMPONENT))
            .arg(field("Architectures", "amd64"))
            .arg(field(
                "Acquire-By-Hash",
                if self.by_hash { "yes" } else { "no" },
            ))
            .arg(field("SHA1", "false"))
            .arg(field("SHA512", "false"))
            .args(["release", &format!("dists/{SUITE}")]))
        .expect_ok()
        .stdout;
        let suite = self.suite();
        std::fs::write(suite.join("Release"), &release).unwrap();
        if self.by_hash {
            for (hash, name) in sha256_entries(&release) {
                let file = suite.join(&name);
                let dir = file.parent().unwrap().join("by-hash/SHA256");
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::copy(&file, dir.join(hash)).unwrap();
            }
        }
        self.key
            .clearsign(&suite.join("Release"), &suite.join("InRelease"));
        self.key
            .detach_sign(&suite.join("Release"), &suite.join("Release.gpg"), true);
    }
}

/// The `(hash, path)` pairs of a Release file's SHA256 section.
fn sha256_entries(release: &str) -> Vec<(String, String)> {
    release
        .lines()
        .skip_while(|l| *l != "SHA256:")
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (hash, _size, name) = (f.next()?, f.next()?, f.next()?);
            Some((hash.to_owned(), name.to_owned()))
        })
        .collect()
}

impl Repo for AptRepo {
    fn name(&self) -> &str {
        &self.name
    }

    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn publish(&mut self) -> String {
        self.version += 1;
        let version = format!("1.0-{}", self.version);
        self.build_deb(&version);
        self.write_indexes();
        self.write_release();
        self.clock.stamp(&self.dir);
        version
    }

    fn package(&self, version: &str) -> Vec<u8> {
        std::fs::read(self.deb(version)).expect("a published .deb")
    }

    fn package_path(&self, version: &str) -> String {
        format!(
            "{}/pool/{COMPONENT}/h/{PACKAGE}/{PACKAGE}_{version}_all.deb",
            self.prefix
        )
    }

    fn client(&self, base: &str) -> Box<dyn Client> {
        Box::new(AptClient::new(base, &self.key.public(false), self.by_hash))
    }
}

/// `apt-get` and `apt-cache` with `APT_CONFIG` naming a configuration that puts every
/// directory (lists, cache, status, sources, keyrings, apt.conf.d) in a temporary one;
/// root without sandbox user and without locks.
pub struct AptClient {
    dir: TempDir,
}

impl AptClient {
    /// `deb822` writes the source as a `.sources` file; otherwise as a one-line
    /// `sources.list`.
    pub fn new(base: &str, public_key: &[u8], deb822: bool) -> AptClient {
        let dir = TempDir::new("apt-client");
        let d = dir.path();
        for sub in [
            "etc/apt/apt.conf.d",
            "etc/apt/sources.list.d",
            "etc/apt/preferences.d",
            "etc/apt/trusted.gpg.d",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/lib/dpkg",
            "var/log/apt",
            "download",
        ] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("var/lib/dpkg/status"), b"").unwrap();
        let keyring = d.join("repository.gpg");
        std::fs::write(&keyring, public_key).unwrap();
        let keyring = keyring.display();
        if deb822 {
            std::fs::write(
                d.join("etc/apt/sources.list.d/test.sources"),
                format!(
                    "Types: deb\nURIs: {base}\nSuites: {SUITE}\nComponents: {COMPONENT}\n\
                     Signed-By: {keyring}\n"
                ),
            )
            .unwrap();
            std::fs::write(d.join("etc/apt/sources.list"), b"").unwrap();
        } else {
            std::fs::write(
                d.join("etc/apt/sources.list"),
                format!("deb [signed-by={keyring}] {base} {SUITE} {COMPONENT}\n"),
            )
            .unwrap();
        }
        std::fs::write(
            d.join("apt.conf"),
            format!(
                "Dir \"{root}/\";\n\
                 Dir::State::status \"{root}/var/lib/dpkg/status\";\n\
                 Debug::NoLocking \"true\";\n\
                 APT::Sandbox::User \"root\";\n\
                 APT::Architecture \"amd64\";\n\
                 APT::Architectures {{ \"amd64\"; }};\n\
                 Acquire::Languages \"none\";\n\
                 Acquire::Retries \"0\";\n\
                 Acquire::http::Timeout \"10\";\n\
                 Acquire::http::Proxy \"DIRECT\";\n",
                root = d.display()
            ),
        )
        .unwrap();
        AptClient { dir }
    }

    fn apt(&self, program: &str) -> std::process::Command {
        let mut cmd = command(program, self.dir.path());
        cmd.env("APT_CONFIG", self.dir.path().join("apt.conf"))
            .current_dir(self.dir.path().join("download"));
        cmd
    }
}

/// apt's warnings and errors: `W:`/`E:` lines, failed fetches (`Err:`), mismatches.
fn apt_problem(line: &str) -> bool {
    line.starts_with("W:")
        || line.starts_with("E:")
        || line.starts_with("Err:")
        || line.contains("Hash Sum mismatch")
        || line.contains("unexpected size")
}

impl Client for AptClient {
    fn sync(&mut self) -> Run {
        run(self.apt("apt-get").arg("update")).with_problems(apt_problem)
    }

    fn candidate(&mut self) -> Result<String, Run> {
        let r = run(self.apt("apt-cache").args(["policy", PACKAGE]));
        r.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("Candidate: "))
            .filter(|v| *v != "(none)")
            .map(str::to_owned)
            .ok_or(r)
    }

    fn download(&mut self) -> Result<Vec<u8>, Run> {
        let version = self.candidate()?;
        let r = run(self.apt("apt-get").args(["download", PACKAGE]));
        let file = self
            .dir
            .path()
            .join(format!("download/{PACKAGE}_{version}_all.deb"));
        match std::fs::read(&file) {
            Ok(bytes) if r.code == Some(0) => Ok(bytes),
            _ => Err(r),
        }
    }
}
