package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/status"
)

// Issue 14.3: info lines go to stdout (procd: daemon.info), problems to stderr (daemon.err).
func TestLogStreams(t *testing.T) {
	l := newLab(t, "availability")
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	l.start()
	// Run it again with the streams apart (start's own run has them together).
	l.cmd.Process.Kill()
	<-l.exited
	l.exited <- nil
	<-l.exited
	l.cmd = exec.Command(binary, "run", "-c", l.cfg, "-v", "-hooks", filepath.Join(l.dir, "hotplug.d"))
	l.cmd.Stdout, l.cmd.Stderr = stdout, stderr
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l.exited = make(chan error, 1)
	go func() { l.exited <- l.cmd.Wait() }()
	l.waitFor("started", func() bool { return strings.Contains(stdout.String(), "started:") })
	l.nextdns.Drop()
	l.waitState("failover")
	os.WriteFile(l.cfg, []byte("config settings 'settings'\n\toption mode 'fastest'\n"), 0o644)
	l.cmd.Process.Signal(syscall.SIGHUP)
	l.waitFor("the rejected reload", func() bool { return strings.Contains(stderr.String(), "config rejected") })

	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !strings.HasPrefix(line, "warning: ") && !strings.HasPrefix(line, "error: ") && !strings.HasPrefix(line, "/") {
			t.Errorf("stderr (daemon.err) holds a line that is no problem: %q", line)
		}
	}
	out := stdout.String()
	for _, want := range []string{"started:", "state healthy -> failover", "servers-file ", "debug: probe"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout (daemon.info) lacks %q", want)
		}
	}
	if strings.Contains(out, "warning: ") || strings.Contains(out, "error: ") {
		t.Errorf("stdout holds a problem line:\n%s", out)
	}
	if !strings.Contains(stderr.String(), "error: reload: config rejected") {
		t.Errorf("stderr lacks the rejected reload:\n%s", stderr.String())
	}
	t.Logf("stdout:\n%s\nstderr:\n%s", out, stderr.String())
}

// Issue 15.6: a daemon that cannot publish (here: stopped, its last status old) is still
// running: `status` says so instead of "not running", and `force` still reaches it.
func TestStaleStatusOfALiveDaemon(t *testing.T) {
	l := newLab(t, "availability")
	l.start()
	l.cmd.Process.Signal(syscall.SIGSTOP)
	defer l.cmd.Process.Signal(syscall.SIGCONT)
	b, err := os.ReadFile(l.statusF)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	raw["updated"] = time.Now().Add(-10 * time.Minute).Format(time.RFC3339Nano)
	b, _ = json.Marshal(raw)
	os.WriteFile(l.statusF, b, 0o644)
	if st, _ := status.Read(l.statusF); !st.Stale(time.Now()) {
		t.Fatal("the doctored status is not stale")
	}
	out, err := exec.Command(binary, "status", "-c", l.cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "runs but has not updated") || !strings.Contains(string(out), "DNS:       on NextDNS") {
		t.Errorf("status: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "force", "primary", "-c", l.cfg).CombinedOutput(); err != nil {
		t.Errorf("force: %v\n%s", err, out)
	}
	l.cmd.Process.Signal(syscall.SIGCONT)
	l.waitState("forced-primary")
}
