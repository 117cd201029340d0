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
	if *asJSON {
		stdout.Write(st.JSON())
	} else {
		t := findTarget(s)
		warnings := t.Warnings
		if t.Err != nil {
			warnings = append(warnings, fmt.Sprintf("cannot audit dnsmasq: %v", t.Err))
		}
		status.Format(stdout, st, now, warnings)
	}
	if st.Stale(now) || st.State == "stopped" {
		return exitNotRunning
	}
	return exitOK
}
