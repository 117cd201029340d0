// Package hooks runs the scripts of /etc/hotplug.d/nextdns-failover/ on every state change, the
// way OpenWrt's hotplug-call does: each file in name order, with the event in the environment. They
// run one batch at a time in the background, each with a time limit, so a slow hook never holds
// up the watchdog.
package hooks

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// DefaultDir is where OpenWrt keeps hotplug scripts for our events.
const DefaultDir = "/etc/hotplug.d/nextdns-failover"

// queue is how many events may wait while a batch runs; more are dropped (and logged): a hook
// that cannot keep up must not grow the daemon's memory.
const queue = 16

// Event is one state change as the scripts see it.
type Event struct {
	Old, New, Reason string
	Servers          []string
}

// Env is the environment of a hook: ACTION (the new state), PREVIOUS_STATE, REASON and SERVERS
// (the active servers, space separated), plus PATH.
func (e Event) Env() []string {
	return []string{
		"ACTION=" + e.New,
		"STATE=" + e.New,
		"PREVIOUS_STATE=" + e.Old,
		"REASON=" + e.Reason,
		"SERVERS=" + strings.Join(e.Servers, " "),
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}
}

// Runner runs hooks in the background.
type Runner struct {
	dir     string
	timeout time.Duration
	logf    func(string, ...any)
	events  chan Event
	done    chan struct{}
}

// New starts a runner for the scripts in dir.
func New(dir string, timeout time.Duration, logf func(string, ...any)) *Runner {
	r := &Runner{dir: dir, timeout: timeout, logf: logf, events: make(chan Event, queue), done: make(chan struct{})}
	go r.loop()
	return r
}

// Fire queues an event; it never blocks.
func (r *Runner) Fire(old, new, reason string, servers []string) {
	select {
	case r.events <- Event{Old: old, New: new, Reason: reason, Servers: append([]string(nil), servers...)}:
	default:
		r.logf("hooks: %d events already waiting; dropped %s -> %s", queue, old, new)
	}
}

// Close waits for the queued events' hooks to finish (each bounded by the timeout).
func (r *Runner) Close() {
	close(r.events)
	<-r.done
}

func (r *Runner) loop() {
	defer close(r.done)
	for e := range r.events {
		for _, f := range r.scripts() {
			r.run(f, e)
		}
	}
}

// scripts lists the regular files of dir in name order (like hotplug-call), skipping hidden ones.
func (r *Runner) scripts() []string {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(r.dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// run starts one script and waits for it, killing its process group after the timeout. It uses
// os.StartProcess, not os/exec: os/exec adds about 200 KB to a MIPS binary (measured).
func (r *Runner) run(file string, e Event) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		r.logf("hook %s: %v", file, err)
		return
	}
	defer devnull.Close()
	// Like hotplug-call, scripts need not be executable: sh runs them.
	p, err := os.StartProcess("/bin/sh", []string{"sh", file}, &os.ProcAttr{
		Dir:   "/",
		Env:   e.Env(),
		Files: []*os.File{devnull, devnull, devnull},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		r.logf("hook %s: %v", file, err)
		return
	}
	done, killed := make(chan struct{}), make(chan bool, 1)
	go func() {
		select {
		case <-done:
			killed <- false
		case <-time.After(r.timeout):
			syscall.Kill(-p.Pid, syscall.SIGKILL) // the script and whatever it started
			killed <- true
		}
	}()
	st, err := p.Wait()
	close(done)
	timedOut := <-killed
	switch {
	case timedOut:
		r.logf("hook %s: killed after %s", file, r.timeout)
	case err != nil:
		r.logf("hook %s (%s): %v", file, e.New, err)
	case !st.Success():
		r.logf("hook %s (%s): %s", file, e.New, st)
	}
}
