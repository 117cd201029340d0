package main

import (
	"io/fs"
	"time"
)

// pkgFile is one file of the package, as it lands on the router.
type pkgFile struct {
	Path string      // absolute path on the router, e.g. /usr/sbin/nextdns-failover
	Mode fs.FileMode // permission bits (0755, 0644, 0600); fs.ModeSymlink for a link
	Data []byte      // contents of a regular file
	Link string      // target of a symlink
}

// spec is everything a package format needs to know; ipk.go and apk.go each write one.
type spec struct {
	Name, Version, Release, Arch string // Version "0.1.0", Release "1"
	Description, License, URL    string
	Maintainer, Section          string
	Depends                      []string  // package names, e.g. "dnsmasq"
	Files                        []pkgFile // sorted by Path; parent directories are implied
	Conffiles                    []string  // absolute paths kept on upgrade
	PostInst, PreRm              []byte    // our own steps, shell, without OpenWrt's default_* calls
	MTime                        time.Time // every timestamp (SOURCE_DATE_EPOCH)
}
