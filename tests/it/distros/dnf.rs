//! RPM: packages built by `rpmbuild` from a tiny spec in a temporary `_topdir`, a
//! repository made by `createrepo_c` (`--update` for later versions; hash-named
//! `repodata/` files beside `repomd.xml`), and the real `dnf` with its configuration,
//! repository list, cache and install root in a temporary directory.

use std::path::{Path, PathBuf};

use super::repo::{Client, Clock, PACKAGE, Repo};
use super::tool::{Run, command, run};
use crate::support::TempDir;

/// An RPM repository at `ORIGIN/prefix`.
pub struct DnfRepo {
    prefix: String,
    dir: PathBuf,
    clock: Clock,
    version: u32,
    work: TempDir,
}

impl DnfRepo {
    /// An empty repository under `root` at `prefix`.
    pub fn create(root: &Path, prefix: &str) -> DnfRepo {
        let dir = root.join(prefix.trim_start_matches('/'));
        std::fs::create_dir_all(dir.join("Packages")).unwrap();
        DnfRepo {
            prefix: prefix.into(),
            dir,
            clock: Clock::new(),
            version: 0,
            work: TempDir::new("rpm-repo"),
        }
    }

    fn file(&self, version: &str) -> PathBuf {
        self.dir.join("Packages").join(package_file(version))
    }

    /// `rpmbuild -bb` of release `n` of the package.
    fn build(&self, n: u32) -> PathBuf {
        let top = self.work.path().join("rpmbuild");
        let spec = self.work.path().join(format!("{PACKAGE}.spec"));
        std::fs::write(
            &spec,
            format!(
                "Name: {PACKAGE}\nVersion: 1.0\nRelease: {n}\n\
                 Summary: package-cache's test package\nLicense: MIT\nBuildArch: noarch\n\n\
                 %description\nA package for package-cache's tests.\n\n\
                 %install\nmkdir -p %{{buildroot}}/usr/share/{PACKAGE}\n\
                 echo 1.0-{n} > %{{buildroot}}/usr/share/{PACKAGE}/version\n\n\
                 %files\n/usr/share/{PACKAGE}/version\n"
            ),
        )
        .unwrap();
        run(command("rpmbuild", self.work.path())
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .arg("--define")
            .arg(format!(
                "_dbpath {}",
                self.work.path().join("rpmdb").display()
            ))
            .arg("--define")
            .arg(format!("_tmppath {}", self.work.path().display()))
            .arg("-bb")
            .arg(&spec))
        .expect_ok();
        top.join("RPMS/noarch")
            .join(package_file(&format!("1.0-{n}")))
    }
}

fn package_file(version: &str) -> String {
    format!("{PACKAGE}-{version}.noarch.rpm")
}

impl Repo for DnfRepo {
    fn name(&self) -> &str {
        "dnf"
    }

    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn publish(&mut self) -> String {
        self.version += 1;
        let version = format!("1.0-{}", self.version);
        let built = self.build(self.version);
        std::fs::copy(&built, self.file(&version)).expect("copy the rpm");
        let mut cmd = command("createrepo_c", self.work.path());
        if self.version > 1 {
            cmd.arg("--update");
        }
        run(cmd.args(["--no-database", "--quiet"]).arg(&self.dir)).expect_ok();
        self.clock.stamp(&self.dir);
        version
    }

    fn package(&self, version: &str) -> Vec<u8> {
        std::fs::read(self.file(version)).expect("a published rpm")
    }

    fn package_path(&self, version: &str) -> String {
        format!("{}/Packages/{}", self.prefix, package_file(version))
    }

    fn client(&self, base: &str) -> Box<dyn Client> {
        Box::new(DnfClient::new(base))
    }
}

/// dnf with `--config`, `--setopt=reposdir=`, `--installroot` and `cachedir` in a
/// temporary directory. Metadata never expires by itself: `sync` is `makecache
/// --refresh`, so the test decides when the client asks for `repomd.xml`.
pub struct DnfClient {
    dir: TempDir,
}

impl DnfClient {
    pub fn new(base: &str) -> DnfClient {
        let dir = TempDir::new("dnf-client");
        let d = dir.path();
        for sub in ["repos.d", "cache", "root", "download"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(
            d.join("dnf.conf"),
            format!(
                "[main]\ngpgcheck=0\nkeepcache=1\ninstall_weak_deps=0\n\
                 metadata_expire=-1\nretries=1\ntimeout=10\nminrate=0\n\
                 cachedir={d}/cache\nreposdir={d}/repos.d\n",
                d = d.display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("repos.d/test.repo"),
            format!(
                "[test]\nname=package-cache test\nbaseurl={base}/\n\
                 enabled=1\ngpgcheck=0\nrepo_gpgcheck=0\nmetadata_expire=-1\n"
            ),
        )
        .unwrap();
        DnfClient { dir }
    }

    fn dnf(&self, args: &[&str]) -> Run {
        let d = self.dir.path();
        run(command("dnf", d)
            .args(["-y", "--noplugins", "--releasever", "1", "--config"])
            .arg(d.join("dnf.conf"))
            .arg(format!("--setopt=reposdir={}", d.join("repos.d").display()))
            .arg(format!("--setopt=cachedir={}", d.join("cache").display()))
            .arg("--installroot")
            .arg(d.join("root"))
            .args(args))
        .with_problems(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("error")
                || l.contains("failed")
                || l.contains("curl error")
                || l.contains("checksum")
                || l.contains("cannot download")
        })
    }
}

impl Client for DnfClient {
    fn sync(&mut self) -> Run {
        self.dnf(&["makecache", "--refresh"])
    }

    fn candidate(&mut self) -> Result<String, Run> {
        let r = self.dnf(&[
            "-C",
            "repoquery",
            "--latest-limit",
            "1",
            "--qf",
            "%{version}-%{release}",
            PACKAGE,
        ]);
        r.stdout
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with("1.0-"))
            .map(str::to_owned)
            .ok_or(r)
    }

    fn download(&mut self) -> Result<Vec<u8>, Run> {
        let version = self.candidate()?;
        let into = self.dir.path().join("download");
        let r = self.dnf(&[
            "install",
            "--downloadonly",
            "--downloaddir",
            &into.to_string_lossy(),
            PACKAGE,
        ]);
        match std::fs::read(into.join(package_file(&version))) {
            Ok(bytes) if r.clean() => Ok(bytes),
            _ => Err(r),
        }
    }
}
