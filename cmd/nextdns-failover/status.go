package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/status"
)

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs, cfg := flags("status", "[-c FILE] [--json]", stderr)
	asJSON := fs.Bool("json", false, "print the raw status JSON")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	s, ok := load(*cfg, stderr)
	if !ok {
		return exitFail
	}
	st, err := status.Read(s.StatusFile)
	if err != nil {
		if errors.Is(err, status.ErrNotRunning) {
			fmt.Fprintf(stdout, "DNS:       unknown: the watchdog is not running (no %s)\n", s.StatusFile)
			fmt.Fprintf(stdout, "           start it: /etc/init.d/nextdns-failover start\n")
			return exitNotRunning
		}
		fmt.Fprintf(stderr, "nextdns-failover status: %v\n", err)
		return exitFail
	}
	now := time.Now()
	// A stale status from a daemon that still runs: it cannot write the file (a full /tmp, a
	// permission). Say so, and show the last state it published, not "not running".
	running := st.Stale(now) && isWatchdog(st.PID)
	if *asJSON {
		stdout.Write(st.JSON())
	} else {
		t := findTarget(s)
		warnings := t.Warnings
		if t.Err != nil {
			warnings = append(warnings, fmt.Sprintf("cannot audit dnsmasq: %v", t.Err))
		}
		if running {
			fmt.Fprintf(stdout, "note:      the watchdog (pid %d) runs but has not updated %s since %s: it cannot write it (see logread); the last state it published:\n",
				st.PID, s.StatusFile, st.Updated.Local().Format("2006-01-02 15:04:05"))
			shown := *st
			shown.StaleAfter = 0
			st = &shown
		}
		status.Format(stdout, st, now, warnings)
	}
	if (st.Stale(now) && !running) || st.State == "stopped" {
		return exitNotRunning
	}
	return exitOK
}
