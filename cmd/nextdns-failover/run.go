package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
	"github.com/nextdns-failover/nextdns-failover/pkg/dnsmasq"
	"github.com/nextdns-failover/nextdns-failover/pkg/hooks"
	"github.com/nextdns-failover/nextdns-failover/pkg/status"
	"github.com/nextdns-failover/nextdns-failover/pkg/watchdog"
)

// gcPercent is the daemon's GOGC unless the environment sets one. Go collects only once the
// heap passes its 4 MB minimum target, so with the default (100) the idle daemon's RSS peaked
// at 7.6 MB after about 18 minutes (scripts/footprint.sh, 1500 s); 50 kept the peak at 5.7 MB
// for about 0.1 s more CPU an hour. GOMEMLIMIT is no help: near the limit the collector runs
// all the time (18.6 s of CPU an hour at 4 MiB).
const gcPercent = 50

// hookTimeout bounds one hook script: a hook that hangs must not pile up processes on a router.
const hookTimeout = 10 * time.Second

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs, cfg := flags("run", "[-c FILE] [-dhcp FILE] [-user NAME] [-v]", stderr)
	verbose := fs.Bool("v", false, "log every probe (debug)")
	hookDir := fs.String("hooks", hooks.DefaultDir, "run the scripts in this `dir` on every state change")
	dhcp := fs.String("dhcp", "", "read dnsmasq's dhcp config (instance, pid file, leak audit) from this `file` instead of dhcp_config: a copy the init script makes as root when the daemon runs as the dnsmasq user")
	runAs := fs.String("user", "", "start as root, open the packet socket, then run as this `user` (the init script's choice where there is no ujail)")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	logf := lineLogger(stdout, stderr)
	debugf := func(string, ...any) {}
	if *verbose {
		debugf = func(format string, a ...any) { logf("debug: "+format, a...) }
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	// SIGHUP and SIGUSR1 are caught from the start: their default action ends the process, and
	// procd's WAN-up trigger may send a SIGHUP while the daemon is still starting at boot. They
	// wait in the channel until the loop below reads them.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The linked-IP upkeep starts only once the watchdog runs, after -user has dropped root
	// where the daemon runs as the dnsmasq user (with ujail it stays root, and so does
	// uclient-fetch).
	link := &linkIPUpkeep{ctx: ctx, logf: logf}
	var last *config.Settings // the settings in force, for the upkeep
	running := false
	loadConfig := func() (*config.Settings, error) {
		s, err := config.Load(*cfg)
		if err != nil {
			return nil, err
		}
		if *dhcp != "" {
			s.DHCPConfig = *dhcp
		}
		last = s
		if running && s.Enabled {
			link.apply(s.LinkIPURL, s.LinkIPInterval)
		}
		return s, nil
	}
	s, err := loadConfig()
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return exitFail
	}
	if !s.Enabled {
		logf("%s: enabled is 0; not running (the servers-file is left as it is)", *cfg)
		return exitOK
	}
	hk := hooks.New(*hookDir, hookTimeout, func(format string, a ...any) { logf("warning: "+format, a...) })
	defer hk.Close()
	w, err := watchdog.New(watchdog.Deps{
		Config:  *cfg,
		Load:    loadConfig,
		PIDFile: pidFile,
		Publish: publish,
		OnChange: func(c watchdog.Change) {
			hk.Fire(c.Old, c.New, c.Reason, c.Servers)
		},
		Observe:  observe,
		Audit:    dnsmasq.AuditServers,
		Decorate: link.decorate,
		Drop: func() error {
			if *runAs != "" {
				if err := dropTo(*runAs); err != nil {
					return err
				}
				logf("running as %s from now on", *runAs)
			}
			running = true
			link.apply(last.LinkIPURL, last.LinkIPInterval)
			return nil
		},
		Logf:    logf,
		Debugf:  debugf,
		Version: version,
	})
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return exitFail
	}
	if t := findTarget(s); t.Err != nil && s.PIDFile == "" {
		logf("warning: %v", t.Err)
	}

	reload := make(chan struct{}, 1)
	control := make(chan watchdog.Override, 1)
	go func() {
		for sig := range sigs {
			switch sig {
			case syscall.SIGHUP:
				link.kick()
				select {
				case reload <- struct{}{}:
				default: // a reload is already queued
				}
			case syscall.SIGUSR1:
				// The request file's folder is the status file's, as read at start.
				if o, ok := readOverride(s, logf); ok {
					control <- o.Override
				}
			}
		}
	}()
	// A persisted override survives a restart of the daemon.
	if o, ok := readOverride(s, logf); ok && o.Persist {
		control <- o.Override
	} else if ok {
		os.Remove(overridePath(s))
	}
	if err := w.Run(ctx, reload, control); err != nil {
		logf("error: %v", err)
		return exitFail
	}
	return exitOK
}

// publish writes the status file and, when configured, the metrics file. A failure of one
// does not stop the other; each error names its file and its cause once (never the name of a
// temporary file, which changes every round).
func publish(s *config.Settings, st *status.Status) error {
	var errs []error
	if err := status.Write(s.StatusFile, st); err != nil {
		errs = append(errs, fmt.Errorf("status file %w", err))
	}
	if s.MetricsFile != "" {
		if err := status.WriteMetrics(s.MetricsFile, st); err != nil {
			errs = append(errs, fmt.Errorf("metrics file %w", err))
		}
	}
	return errors.Join(errs...)
}

// lineLogger prints one line per message: to stdout (procd: daemon.info), or to stderr
// (daemon.err) when it starts "warning: " or "error: ". Lines are written whole, one at a
// time, so the two streams never cut into each other's lines.
func lineLogger(stdout, stderr io.Writer) func(format string, a ...any) {
	var mu sync.Mutex
	return func(format string, a ...any) {
		line := fmt.Sprintf(format, a...)
		w := stdout
		if strings.HasPrefix(line, "warning: ") || strings.HasPrefix(line, "error: ") {
			w = stderr
		}
		mu.Lock()
		defer mu.Unlock()
		io.WriteString(w, strings.TrimRight(line, "\n")+"\n")
	}
}
