package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
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
	fs, cfg := flags("run", "[-c FILE] [-v]", stderr)
	verbose := fs.Bool("v", false, "log every probe (debug)")
	hookDir := fs.String("hooks", hooks.DefaultDir, "run the scripts in this `dir` on every state change")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	logger := log.New(stderr, "", 0) // procd adds the time and tag in syslog
	logf := func(format string, a ...any) { logger.Printf(format, a...) }
	debugf := func(string, ...any) {}
	if *verbose {
		debugf = func(format string, a ...any) { logger.Printf("debug: "+format, a...) }
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	s, ok := load(*cfg, stderr)
	if !ok {
		return exitFail
	}
	if !s.Enabled {
		logf("%s: enabled is 0; not running (the servers-file is left as it is)", *cfg)
		return exitOK
	}
	hk := hooks.New(*hookDir, hookTimeout, logf)
	defer hk.Close()
	w, err := watchdog.New(watchdog.Deps{
		Config:  *cfg,
		Load:    func() (*config.Settings, error) { return config.Load(*cfg) },
		PIDFile: pidFile,
		Publish: publish,
		OnChange: func(c watchdog.Change) {
			hk.Fire(c.Old, c.New, c.Reason, c.Servers)
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

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	reload := make(chan struct{}, 1)
	control := make(chan watchdog.Override, 1)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1)
	go func() {
		for sig := range sigs {
			switch sig {
			case syscall.SIGHUP:
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
		logf("%v", err)
		return exitFail
	}
	return exitOK
}

// publish writes the status file and, when configured, the metrics file.
func publish(s *config.Settings, st *status.Status) error {
	if err := status.Write(s.StatusFile, st); err != nil {
		return err
	}
	if s.MetricsFile != "" {
		return status.WriteMetrics(s.MetricsFile, st)
	}
	return nil
}
