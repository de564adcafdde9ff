# Copyright 2026 Gentoo Authors
# Distributed under the terms of the GNU General Public License v2

# CRATES and the crates' LICENSE+= are generated from Cargo.lock by pycargoebuild. After
# any change to Cargo.lock, regenerate them from the top of the source tree with
#
#   contrib/gentoo/update-crates
#
# (pip install pycargoebuild first). tests/ebuild.rs fails until they match.
#
# The project has no public download site yet: set PC_HOME to where your release
# tarballs live (or make one with
#   git archive --prefix=package-cache-0.2.0/ -o package-cache-0.2.0.tar.gz v0.2.0
# and put it in DISTDIR) and regenerate the Manifest with `ebuild ... manifest`.

EAPI=8

CRATES="
	aho-corasick@1.1.5
	argh@0.1.19
	argh_derive@0.1.19
	argh_shared@0.1.19
	ascii@1.1.0
	base64@0.23.1
	blake2@0.11.0
	block-buffer@0.12.1
	bytes@1.12.1
	cc@1.11.1
	cfg-if@1.0.5
	chunked_transfer@1.5.0
	cmov@0.5.4
	const-oid@0.10.3
	cpufeatures@0.3.1
	crossbeam-channel@0.5.17
	crossbeam-utils@0.8.23
	crypto-common@0.2.2
	ctutils@0.4.8
	digest@0.11.3
	env_filter@2.0.0
	env_logger@0.11.11
	find-msvc-tools@0.1.15
	fs2@0.4.3
	getrandom@0.2.17
	http@1.5.0
	httparse@1.10.1
	httpdate@1.0.3
	hybrid-array@0.4.15
	itoa@1.0.18
	libc@0.2.191
	log@0.4.35
	memchr@2.8.3
	once_cell@1.21.4
	percent-encoding@2.3.2
	proc-macro2@1.0.107
	quote@1.0.47
	regex-automata@0.4.18
	regex-syntax@0.8.11
	regex@1.13.1
	ring@0.17.14
	rustls-pki-types@1.15.1
	rustls-webpki@0.103.16
	rustls@0.23.46
	serde@1.0.229
	serde_core@1.0.229
	serde_derive@1.0.229
	sha1@0.11.0
	sha2@0.11.1
	shlex@2.0.1
	subtle@2.6.1
	syn@2.0.119
	syn@3.0.9
	typenum@1.20.1
	unicode-ident@1.0.27
	untrusted@0.9.0
	ureq-proto@0.7.1
	ureq@3.5.1
	utf8-zero@0.8.1
	wasi@0.11.1+wasi-snapshot-preview1
	webpki-roots@1.0.10
	winapi-i686-pc-windows-gnu@0.4.0
	winapi-x86_64-pc-windows-gnu@0.4.0
	winapi@0.3.9
	windows-sys@0.52.0
	windows-targets@0.52.6
	windows_aarch64_gnullvm@0.52.6
	windows_aarch64_msvc@0.52.6
	windows_i686_gnu@0.52.6
	windows_i686_gnullvm@0.52.6
	windows_i686_msvc@0.52.6
	windows_x86_64_gnu@0.52.6
	windows_x86_64_gnullvm@0.52.6
	windows_x86_64_msvc@0.52.6
	zeroize@1.9.1
"

RUST_MIN_VER="1.89.0"

inherit cargo systemd

PC_HOME="https://git.example.org/package-cache"

DESCRIPTION="Caching proxy for package downloads (distfiles, binhosts, snapshots)"
HOMEPAGE="${PC_HOME}"
SRC_URI="
	${PC_HOME}/archive/v${PV}.tar.gz -> ${P}.tar.gz
	${CARGO_CRATE_URIS}
"

LICENSE="GPL-3+"
# Dependent crate licenses
LICENSE+=" Apache-2.0 BSD CDLA-Permissive-2.0 ISC MIT Unicode-3.0"
SLOT="0"
KEYWORDS="~amd64 ~arm64"

RDEPEND="
	acct-group/portage
	acct-user/package-cache
"

# src_test is cargo_src_test: the tests run on 127.0.0.1 with temporary directories;
# the balancer tests (tests/shard.rs) skip themselves without nginx or haproxy.

src_install() {
	cargo_src_install

	newinitd contrib/openrc/init.d/package-cache package-cache
	newconfd contrib/openrc/conf.d/package-cache package-cache
	systemd_dounit contrib/systemd/package-cache.service

	dodoc README.rst
	docinto examples
	docompress -x "/usr/share/doc/${PF}/examples"
	dodoc contrib/nginx/package-cache-shards.conf contrib/haproxy/package-cache-shards.cfg
}

pkg_postinst() {
	elog "The service runs as package-cache:portage. OpenRC settings are in"
	elog "/etc/conf.d/package-cache; with systemd, 'systemctl edit package-cache'."
	elog "Clients: GENTOO_MIRRORS=\"http://cache.example.lan:4000\" in make.conf."
	elog "Sharding several instances behind nginx or HAProxy: see"
	elog "/usr/share/doc/${PF}/examples."
}
