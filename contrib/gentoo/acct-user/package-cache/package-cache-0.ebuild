# Copyright 2026 Gentoo Authors
# Distributed under the terms of the GNU General Public License v2

# The user net-proxy/package-cache runs as (contrib/openrc and contrib/systemd), in the
# group portage so that it can share a cache directory with portage's DISTDIR.

EAPI=8

inherit acct-user

DESCRIPTION="User for net-proxy/package-cache"
ACCT_USER_ID=-1
ACCT_USER_GROUPS=( portage )
ACCT_USER_HOME=/var/empty

acct-user_add_deps
