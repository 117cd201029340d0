package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nextdns-failover/nextdns-failover/internal/tinyjson"
	"github.com/nextdns-failover/nextdns-failover/pkg/config"
	"github.com/nextdns-failover/nextdns-failover/pkg/status"
	"github.com/nextdns-failover/nextdns-failover/pkg/watchdog"
)

// An override reaches the daemon without a listening socket: `force` writes a request file beside
// the status file and sends SIGUSR1 to the pid the status names, after checking that the pid is
// nextdns-failover.

// overrideRequest is the request file's content.
type overrideRequest struct {
	watchdog.Override
	Persist bool // also applied when the daemon restarts (until reboot: /var/run)
}

func overridePath(s *config.Settings) string {
	return filepath.Join(filepath.Dir(s.StatusFile), "override.json")
}

// readOverride reads the request file; ok is false when there is none (or it is unusable).
func readOverride(s *config.Settings, logf func(string, ...any)) (overrideRequest, bool) {
	var r overrideRequest
	b, err := os.ReadFile(overridePath(s))
	if err != nil {
		return r, false
	}
	o, err := tinyjson.ParseObject(b)
	if err == nil {
		r.Side, r.Until, r.Persist = o.Str("side"), o.Time("until"), o.Bool("persist")
	}
	if err != nil || (r.Side != "primary" && r.Side != "secondary" && r.Side != "auto") {
		logf("override request %s ignored: not a valid request", overridePath(s))
		return r, false
	}
	if !r.Until.IsZero() && time.Now().After(r.Until) {
		return r, false
	}
	return r, true
}

func cmdForce(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "primary" && args[0] != "secondary") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stderr, "usage: nextdns-failover force primary|secondary [-c FILE] [--for DURATION] [--persist]")
			return exitOK
		}
		fmt.Fprintln(stderr, "usage: nextdns-failover force primary|secondary [-c FILE] [--for DURATION] [--persist]")
		return exitUsage
	}
	side := args[0]
	fs, cfg := flags("force", "primary|secondary [-c FILE] [--for DURATION] [--persist]", stderr)
	dur := fs.Duration("for", 0, "lift the override after this `duration` (e.g. 30m); 0 = until `auto` or a restart")
	persist := fs.Bool("persist", false, "keep the override across restarts of the daemon (not across reboots)")
	if code := parse(fs, args[1:]); code >= 0 {
		return code
	}
	if *dur < 0 {
		fmt.Fprintln(stderr, "nextdns-failover force: --for must be positive")
		return exitUsage
	}
	r := overrideRequest{Override: watchdog.Override{Side: side}, Persist: *persist}
	if *dur > 0 {
		r.Until = time.Now().Add(*dur)
	}
	return sendOverride(*cfg, r, stdout, stderr)
}

func cmdAuto(args []string, stdout, stderr io.Writer) int {
	fs, cfg := flags("auto", "[-c FILE]", stderr)
	if code := parse(fs, args); code >= 0 {
		return code
	}
	return sendOverride(*cfg, overrideRequest{Override: watchdog.Override{Side: "auto"}}, stdout, stderr)
}

func sendOverride(cfg string, r overrideRequest, stdout, stderr io.Writer) int {
	s, ok := load(cfg, stderr)
	if !ok {
		return exitFail
	}
	if r.Side == "secondary" && (s.Mode == config.Privacy || len(s.Secondary) == 0) {
		fmt.Fprintln(stderr, "nextdns-failover force: secondary needs availability mode and at least one secondary upstream")
		return exitFail
	}
	st, err := status.Read(s.StatusFile)
	// A stale status from a live watchdog (it cannot write the file) still names it.
	if err != nil || st.State == "stopped" || (st.Stale(time.Now()) && !isWatchdog(st.PID)) {
		fmt.Fprintf(stderr, "nextdns-failover: the watchdog is not running (start it: /etc/init.d/nextdns-failover start)\n")
		return exitNotRunning
	}
	if !isWatchdog(st.PID) {
		fmt.Fprintf(stderr, "nextdns-failover: pid %d in %s is not the watchdog; not signalled\n", st.PID, s.StatusFile)
		return exitNotRunning
	}
	var w tinyjson.Writer
	w.Open("", '{')
	w.String("side", r.Side)
	w.Time("until", r.Until)
	w.Bool("persist", r.Persist)
	w.Close('}')
	if err := status.WriteFileAtomic(overridePath(s), w.Bytes()); err != nil {
		fmt.Fprintf(stderr, "nextdns-failover: %v\n", err)
		return exitFail
	}
	if err := syscall.Kill(st.PID, syscall.SIGUSR1); err != nil {
		fmt.Fprintf(stderr, "nextdns-failover: signal pid %d: %v\n", st.PID, err)
		return exitFail
	}
	switch {
	case r.Side == "auto":
		fmt.Fprintln(stdout, "back to automatic")
	case !r.Until.IsZero():
		fmt.Fprintf(stdout, "forced to %s until %s\n", r.Side, r.Until.Format(time.DateTime))
	default:
		fmt.Fprintf(stdout, "forced to %s until `nextdns-failover auto` or a restart%s\n", r.Side, map[bool]string{true: " (persisted across restarts)"}[r.Persist])
	}
	return exitOK
}

// isWatchdog checks /proc/PID/comm (the kernel cuts it to 15 bytes).
func isWatchdog(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.HasPrefix("nextdns-failover", strings.TrimSpace(string(b))) && len(strings.TrimSpace(string(b))) >= 8
}
