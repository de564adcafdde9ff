# Copyright 2026 Gentoo Authors
# Distributed under the terms of the GNU General Public License v2

# The live ebuild: builds the newest commit of the git repository. cargo fetches the
# crates of its Cargo.lock at src_unpack (cargo_live_src_unpack), so there is no CRATES
# list to keep up to date here; the versioned ebuild has one (see its header).
#
# The project has no public repository yet: set PC_REPO (or EGIT_OVERRIDE_REPO_* in
# make.conf, see git-r3.eclass) to yours.

EAPI=8

RUST_MIN_VER="1.89.0"

inherit cargo git-r3 systemd

PC_REPO="https://git.example.org/package-cache.git"

DESCRIPTION="Caching proxy for package downloads (distfiles, binhosts, snapshots)"
HOMEPAGE="${PC_REPO%.git}"
EGIT_REPO_URI="${PC_REPO}"

# The crates' licenses are those of the versioned ebuild (regenerate it to see them).
LICENSE="GPL-3+ Apache-2.0 BSD CDLA-Permissive-2.0 ISC MIT Unicode-3.0"
SLOT="0"

RDEPEND="
	acct-group/portage
	acct-user/package-cache
"

src_unpack() {
	git-r3_src_unpack
	cargo_live_src_unpack
}

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
