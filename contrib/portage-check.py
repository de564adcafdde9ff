#!/usr/bin/env python3
"""Real portage against package-cache, offline.

    python3 -m venv /tmp/pvenv && /tmp/pvenv/bin/pip install portage
    cargo build --release
    /tmp/pvenv/bin/python contrib/portage-check.py target/release/package-cache

Starts a local upstream (Python's http.server over a temporary directory laid out
like a Gentoo mirror), a package-cache in front of it, and runs portage's own code:

1. portage.package.ebuild.fetch.fetch of a distfile with a partial
   NAME.__download__ of 400 KB in DISTDIR: portage resumes with `wget -c` (a Range
   request on a cold cache) and verifies size, BLAKE2B and SHA512;
2. the same for a second distfile with no partial file, through the mirror's
   GLEP 75 layout.conf (portage asks for /distfiles/XX/NAME);
3. the binhost index round trip: portage.util._urlopen.urlopen with
   if_modified_since=TIMESTAMP must get 304, and an older timestamp a 200 whose
   Last-Modified is not older than the one sent;
4. a RESTRICT="mirror" distfile that no mirror has, with the cache set up as the
   `local` mirror in /etc/portage/mirrors (the only mirror portage asks for such a
   file) and GENTOO_MIRRORS and the file's SRC_URI both dead: the cache, started with
   --repo on a repository whose md5-cache and Manifest list the file, fetches it from
   its SRC_URI (an origin server of its own, asked exactly once) and portage verifies
   it.

Prints one line per check and exits non-zero if any fails. CI runs it through
tests/it/portage.rs (.ci/run makes the venv); see README.rst.
"""

import hashlib
import json
import shutil
import http.server
import urllib.request
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/package-cache")
    work = tempfile.mkdtemp(prefix="pc-portage-")
    upstream = os.path.join(work, "upstream")
    distfiles = os.path.join(upstream, "distfiles")
    os.makedirs(distfiles)
    with open(os.path.join(distfiles, "layout.conf"), "w") as f:
        f.write("[structure]\n0=filename-hash BLAKE2B 8\n1=flat\n")
    files = {}
    for name in ("resume-test-1.0.tar.gz", "layout-test-2.0.tar.xz"):
        data = os.urandom(900_000)
        d = os.path.join(distfiles, hashlib.blake2b(name.encode()).hexdigest()[:2])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        files[name] = data
    # A repository listing a mirror-restricted file, and its origin (SRC_URI).
    restricted = "restricted-test-3.1.tar.bz2"
    restricted_data = os.urandom(700_000)
    origin = os.path.join(work, "origin")
    os.makedirs(os.path.join(origin, "pub"))
    with open(os.path.join(origin, "pub", restricted), "wb") as f:
        f.write(restricted_data)
    repo = os.path.join(work, "repo")
    for d in ("profiles", "metadata/md5-cache/net-misc", "net-misc/restricted-test"):
        os.makedirs(os.path.join(repo, d))
    with open(os.path.join(repo, "profiles", "repo_name"), "w") as f:
        f.write("test\n")
    with open(os.path.join(repo, "profiles", "categories"), "w") as f:
        f.write("net-misc\n")
    with open(os.path.join(repo, "net-misc", "restricted-test", "Manifest"), "w") as f:
        f.write(f"DIST {restricted} {len(restricted_data)}"
                f" BLAKE2B {hashlib.blake2b(restricted_data).hexdigest()}"
                f" SHA512 {hashlib.sha512(restricted_data).hexdigest()}\n")

    os.makedirs(os.path.join(upstream, "binpkgs"))
    index = os.path.join(upstream, "binpkgs", "Packages")
    with open(index, "w") as f:
        f.write("TIMESTAMP: 1700000000\nPACKAGES: 0\n\n")
    os.utime(index, (1700000000, 1700000000))

    up_port, pc_port, origin_port, dead_port = free_port(), free_port(), free_port(), free_port()
    with open(os.path.join(repo, "metadata", "md5-cache", "net-misc", "restricted-test-3.1"), "w") as f:
        f.write(f"EAPI=8\nRESTRICT=mirror\nSLOT=0\n"
                f"SRC_URI=http://127.0.0.1:{origin_port}/pub/{restricted}\n")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=upstream)
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", up_port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin_requests = []

    class Origin(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a):
            super().__init__(*a, directory=origin)

        def do_GET(self):
            origin_requests.append(self.path)
            super().do_GET()

    origin_server = http.server.ThreadingHTTPServer(("127.0.0.1", origin_port), Origin)
    threading.Thread(target=origin_server.serve_forever, daemon=True).start()
    cache = subprocess.Popen(
        [binary, "--source", f"http://127.0.0.1:{up_port}", "--cache", os.path.join(work, "cache"),
         "--repo", repo, "--host", "127.0.0.1", "--port", str(pc_port), "-v"],
        stderr=open(os.path.join(work, "package-cache.log"), "w"),
    )
    ready = False
    for _ in range(100):
        time.sleep(0.1)
        try:
            status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{pc_port}/-/status.json"))
        except OSError:
            continue
        if (status.get("repo") or {}).get("ready"):
            ready = True
            break

    root = os.path.join(work, "root")
    distdir = os.path.join(root, "distfiles")
    os.makedirs(os.path.join(root, "etc", "portage"))
    os.makedirs(distdir)
    # The cache as the `local` mirror: the one portage asks for RESTRICT="mirror" files.
    with open(os.path.join(root, "etc", "portage", "mirrors"), "w") as f:
        f.write(f"local http://127.0.0.1:{pc_port}\n")
    os.makedirs(os.path.join(root, "tmp"))
    with open(os.path.join(root, "etc", "portage", "make.conf"), "w") as f:
        f.write(f'DISTDIR="{distdir}"\nGENTOO_MIRRORS="http://127.0.0.1:{pc_port}"\n'
                f'FEATURES="-userfetch -distlocks -sandbox -usersandbox -userpriv"\n'
                f'PORTAGE_TMPDIR="{root}/tmp"\n')
    os.environ["PORTAGE_CONFIGROOT"] = root
    import portage
    from portage.package.ebuild.fetch import fetch
    from portage.util._urlopen import http_to_timestamp, urlopen

    settings = portage.config(config_root=root, target_root=root, config_profile_path="")
    failures = 0

    def check(label, ok, detail=""):
        nonlocal failures
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {label} {detail}")

    partial = "resume-test-1.0.tar.gz"
    with open(os.path.join(distdir, partial + ".__download__"), "wb") as f:
        f.write(files[partial][:400 * 1024])
    for name, data in files.items():
        digests = {name: {"size": len(data), "BLAKE2B": hashlib.blake2b(data).hexdigest(),
                          "SHA512": hashlib.sha512(data).hexdigest()}}
        ok = fetch({name: [f"http://upstream.invalid/{name}"]}, settings, digests=digests, try_mirrors=1)
        with open(os.path.join(distdir, name), "rb") as f:
            same = f.read() == data
        check(f"fetch {name}", ok and same, "(resumed from 400 KB)" if name == partial else "(GLEP 75 path)")

    check("package-cache read --repo", ready)
    restricted_settings = portage.config(clone=settings)
    restricted_settings["PORTAGE_RESTRICT"] = "mirror"
    restricted_settings["GENTOO_MIRRORS"] = f"http://127.0.0.1:{dead_port}"
    digests = {restricted: {"size": len(restricted_data),
                            "BLAKE2B": hashlib.blake2b(restricted_data).hexdigest(),
                            "SHA512": hashlib.sha512(restricted_data).hexdigest()}}
    ok = fetch({restricted: [f"http://127.0.0.1:{dead_port}/pub/{restricted}"]}, restricted_settings,
               digests=digests, try_mirrors=1)
    path = os.path.join(distdir, restricted)
    same = os.path.exists(path) and open(path, "rb").read() == restricted_data
    check(f"fetch {restricted}", ok and same and origin_requests == [f"/pub/{restricted}"],
          f"(RESTRICT=mirror through the local mirror; origin asked {len(origin_requests)} times)")

    url = f"http://127.0.0.1:{pc_port}/binpkgs/Packages"
    try:
        urlopen(url, if_modified_since=1700000000)
        check("binhost If-Modified-Since", False, "expected 304, got 200")
    except OSError as e:
        check("binhost If-Modified-Since", getattr(e, "code", None) == 304, f"-> {getattr(e, 'code', e)}")
    f = urlopen(url, if_modified_since=1699990000)
    remote = int(http_to_timestamp(f.headers["Last-Modified"]))
    check("binhost older timestamp", f.status == 200 and remote >= 1699990000, f"-> {f.status}, Last-Modified {remote}")

    cache.terminate()
    cache.wait(10)
    server.shutdown()
    origin_server.shutdown()
    with open(os.path.join(work, "package-cache.log")) as log:
        print("package-cache log:\n" + log.read())
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
