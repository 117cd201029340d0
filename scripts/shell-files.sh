#!/bin/sh
# Lists the project's shell scripts for shellcheck (POSIX/busybox ash).
cd "$(dirname "$0")/.." || exit 1
git ls-files 'scripts/*.sh' 'files/etc/init.d/*' 'files/etc/uci-defaults/*' 'files/usr/libexec/*' 'openwrt/*.sh' .ci/run
