#!/bin/sh
# Installs the system tools that `make demo` and `make test` drive, when they are missing:
# dnsmasq (the real thing the watchdog steers), qemu-user-static (runs the router builds),
# the shell linter for the init and maintainer scripts, and busybox (whose ash is OpenWrt's
# shell: the shell tests run under it). Debian/Ubuntu only.
set -eu
need=""
command -v dnsmasq >/dev/null 2>&1 || need="$need dnsmasq-base"
command -v qemu-mips-static >/dev/null 2>&1 || need="$need qemu-user-static"
command -v shellcheck >/dev/null 2>&1 || need="$need shellcheck"
command -v busybox >/dev/null 2>&1 || need="$need busybox"
[ -z "$need" ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "deps: installing$need"
$sudo apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
