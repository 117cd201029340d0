package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// passwdFile is where -user names are looked up.
var passwdFile = "/etc/passwd"

// dropTo makes the whole process (every thread) run as name, with name's group and no
// supplementary groups, and so with no capability left. The daemon is started as root only so
// that it can open the packet socket of passive observation (CAP_NET_RAW): procd hands
// `capabilities` to a service only through ujail, and the daemon runs as the dnsmasq user
// exactly where there is no ujail. The open socket keeps working after the drop, and
// re-filtering it on a reload needs no privilege.
func dropTo(name string) error {
	uid, gid, err := lookupUser(passwdFile, name)
	if err != nil {
		return err
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("-user %s: setgroups: %w", name, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("-user %s: setgid %d: %w", name, gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("-user %s: setuid %d: %w", name, uid, err)
	}
	return nil
}

// lookupUser finds name's uid and gid in a passwd file (name:password:uid:gid:...).
func lookupUser(path, name string) (uid, gid int, err error) {
	data, err := os.ReadFile(path) // not bufio.Scanner: 4 KB more of the mips binary
	if err != nil {
		return 0, 0, fmt.Errorf("-user %s: %w", name, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Split(strings.TrimSuffix(line, "\r"), ":")
		if len(fields) < 4 || fields[0] != name {
			continue
		}
		uid, err1 := strconv.Atoi(fields[2])
		gid, err2 := strconv.Atoi(fields[3])
		if err1 != nil || err2 != nil || uid < 0 || gid < 0 {
			return 0, 0, fmt.Errorf("-user %s: %s: bad uid or gid %q:%q", name, path, fields[2], fields[3])
		}
		return uid, gid, nil
	}
	return 0, 0, fmt.Errorf("-user %s: no such user in %s", name, path)
}
