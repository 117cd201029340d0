#!/bin/sh
# Runs every fuzz target of the module for a while (default 30s each): `make fuzz FUZZTIME=5m`.
# Their seed corpora already run as ordinary tests in `make test`.
set -eu
cd "$(dirname "$0")/.."
t=${1:-30s}
for pkg in $(go list ./...); do
	for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
		echo "== $pkg $f ($t)"
		go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg"
	done
done
