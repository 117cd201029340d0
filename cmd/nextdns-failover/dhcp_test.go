package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nextdns-failover/nextdns-failover/internal/dnsmasqtest"
	"github.com/nextdns-failover/nextdns-failover/internal/fakedns"
	"github.com/nextdns-failover/nextdns-failover/pkg/dnsmasq"
	"github.com/nextdns-failover/nextdns-failover/pkg/status"
)

// Issue 14.2: the daemon runs as an unprivileged user (here nobody) and cannot read dhcp_config
// (uci commit leaves it 0600, root's). With -dhcp naming a readable copy (the init script's) it
// finds the dnsmasq instance and its pid file, and signals it: an outage fails over and a
// client gets the backup's answer. Without -dhcp it cannot find the pid file (two pid files
// in the pid folder leave no guess).
func TestRunAsAnotherUserWithDHCPCopy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the daemon as nobody")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)

	world, err := os.MkdirTemp("", "nextdns-failover-dhcp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(world) })
	os.Chmod(world, 0o755)
	bin := filepath.Join(world, "nextdns-failover")
	if b, err := os.ReadFile(binary); err != nil || os.WriteFile(bin, b, 0o755) != nil {
		t.Fatal("copy the binary where nobody can run it")
	}

	// The instance's pid file where OpenWrt's init script puts it, plus a decoy.
	section := fmt.Sprintf("nfotest%d", os.Getpid())
	if _, err := os.Stat(dnsmasq.PIDDir); err != nil {
		if err := os.MkdirAll(dnsmasq.PIDDir, 0o755); err != nil {
			t.Skip(err)
		}
		t.Cleanup(func() { os.Remove(dnsmasq.PIDDir) })
	}
	pidFile := filepath.Join(dnsmasq.PIDDir, "dnsmasq."+section+".pid")
	decoy := filepath.Join(dnsmasq.PIDDir, "dnsmasq."+section+"decoy.pid")
	os.WriteFile(decoy, []byte("1\n"), 0o644)
	t.Cleanup(func() { os.Remove(pidFile); os.Remove(decoy) })

	nd, err := fakedns.Start("127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nd.Close() })
	nd.SetAnswerAddr(nextdnsAnswer)
	bk, err := fakedns.Start("127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bk.Close() })
	bk.SetAnswerAddr(backupAnswer)
	dm := dnsmasqtest.StartT(t, dnsmasqtest.Options{Dir: filepath.Join(world, "dnsmasq"), StrictOrder: true})
	os.Chown(dm.ServersFile, uid, gid)
	if b, err := os.ReadFile(dm.PIDFile); err != nil || os.WriteFile(pidFile, b, 0o644) != nil {
		t.Fatal("the instance's pid file")
	}

	run := filepath.Join(world, "run")
	os.Mkdir(run, 0o755)
	os.Chown(run, uid, gid)
	dhcp := filepath.Join(world, "dhcp")
	dhcpText := "config dnsmasq '" + section + "'\n\toption serversfile '" + dm.ServersFile + "'\n\toption strictorder '1'\n\toption noresolv '1'\n"
	os.WriteFile(dhcp, []byte(dhcpText), 0o600) // root's, as after uci commit
	dhcpCopy := filepath.Join(run, "dhcp")
	os.WriteFile(dhcpCopy, []byte(dhcpText), 0o640)
	os.Chown(dhcpCopy, 0, gid)
	cfg := filepath.Join(world, "config")
	statusF := filepath.Join(run, "status.json")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`config settings 'settings'
	list primary '%s'
	list secondary '%s'
	option interval '%s'
	option fast_interval '%s'
	option timeout '%s'
	option fail_after '2'
	option recover_after '2'
	option hold_down '1s'
	option servers_file '%s'
	option status_file '%s'
	option dhcp_config '%s'
	option dnsmasq_instance '%s'
`, nd.Upstream(), bk.Upstream(), interval, fastInterval, probeTimeout, dm.ServersFile, statusF, dhcp, section)), 0o644)

	// start runs the daemon as nobody, or (asRoot) as root with -user nobody: the init
	// script's way where there is no ujail, so that passive observation gets its socket.
	start := func(asRoot bool, args ...string) (*exec.Cmd, *syncBuffer) {
		log := &syncBuffer{}
		cmd := exec.Command(bin, append([]string{"run", "-c", cfg, "-hooks", filepath.Join(world, "none")}, args...)...)
		cmd.Stdout, cmd.Stderr = log, log
		if !asRoot {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-done
			if t.Failed() {
				t.Logf("daemon log (%v):\n%s", args, log.String())
			}
		})
		return cmd, log
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(settle)
		for time.Now().Before(deadline) {
			if cond() {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		st, _ := status.Read(statusF)
		t.Fatalf("%s: not within %s; status %+v", what, settle, st)
	}
	state := func() *status.Status {
		st, err := status.Read(statusF)
		if err != nil {
			return &status.Status{}
		}
		return st
	}

	// Without -dhcp: dhcp is unreadable, and the pid folder holds two pid files.
	cmd, log := start(false)
	waitFor("the problem reported", func() bool { return strings.Contains(state().Problem, "pid file") })
	if !strings.Contains(log.String(), "permission denied") {
		t.Errorf("without -dhcp the log does not say dhcp is unreadable:\n%s", log.String())
	}
	cmd.Process.Kill()

	// With -dhcp, started as root with -user nobody: found and signalled, passive
	// observation on, and the process runs as nobody with no capability left.
	cmd, log = start(true, "-dhcp", dhcpCopy, "-user", "nobody")
	waitFor("dnsmasq signalled", func() bool {
		st := state()
		return st.State == "healthy" && st.Counters.Signals > 0 && st.Problem == ""
	})
	if p := state().Passive; p != "on" {
		t.Errorf("passive %q: want on (the socket is opened before the drop)", p)
	}
	proc, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	for _, want := range []string{fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", uid, uid, uid, uid), fmt.Sprintf("Gid:\t%d\t%d\t%d\t%d", gid, gid, gid, gid), "CapEff:\t0000000000000000", "CapPrm:\t0000000000000000"} {
		if !strings.Contains(string(proc), want) {
			t.Errorf("/proc/PID/status lacks %q:\n%s", want, proc)
		}
	}
	nd.Drop()
	waitFor("failover", func() bool { return state().State == "failover" })
	ask := func() bool {
		ctx, cancel := contextTimeout(5 * time.Second)
		defer cancel()
		r, err := dm.Query(ctx, fmt.Sprintf("q%d.example", time.Now().UnixNano()), dnsmasqtest.Stub{Name: "test", Interval: 300 * time.Millisecond, Sends: 3})
		return err == nil && r.A == backupAnswer
	}
	waitFor("a client answer via the backup", ask)
	if strings.Contains(log.String(), "permission denied") {
		t.Errorf("with -dhcp the daemon still read dhcp_config:\n%s", log.String())
	}
}

func contextTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
