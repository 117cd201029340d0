package dnsmasqtest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/nextdns-failover/nextdns-failover/internal/fakedns"
)

// quick is a stub that resends fast, so tests that need a resend stay short.
var quick = Stub{Name: "quick", Interval: 400 * time.Millisecond, Sends: 2}

// upstreams starts a fake "nextdns" (answers 192.0.2.1) and "backup" (192.0.2.2).
func upstreams(t *testing.T) (nextdns, backup *fakedns.Server) {
	t.Helper()
	var err error
	if nextdns, err = fakedns.Start("127.0.0.2:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nextdns.Close() })
	if backup, err = fakedns.Start("127.0.0.3:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backup.Close() })
	nextdns.SetAnswerAddr(netip.MustParseAddr("192.0.2.1"))
	backup.SetAnswerAddr(netip.MustParseAddr("192.0.2.2"))
	return nextdns, backup
}

func skipWithoutDnsmasq(t *testing.T) {
	t.Helper()
	if _, err := findBinary(""); err != nil {
		t.Skip(err)
	}
}

func TestForwardsToTheFirstServerUnderStrictOrder(t *testing.T) {
	skipWithoutDnsmasq(t)
	nextdns, backup := upstreams(t)
	d := StartT(t, Options{ListenAddr: netip.MustParseAddr("127.0.0.4"), StrictOrder: true,
		Servers: []string{nextdns.Upstream(), backup.Upstream()}})
	for i := range 20 {
		r, err := d.Query(context.Background(), fmt.Sprintf("n%d.example", i), quick)
		if err != nil {
			t.Fatal(err)
		}
		if r.A != nextdns.AnswerAddr() {
			t.Fatalf("answer %v, want NextDNS's %v", r.A, nextdns.AnswerAddr())
		}
	}
	if c := backup.Snapshot(); c.Received != 0 {
		t.Errorf("backup received %d queries while NextDNS answered", c.Received)
	}
}

// TestServersFileSwitch is the mechanism the product relies on: rewriting the servers-file
// and sending SIGHUP moves the traffic; rewriting without the signal does not.
func TestServersFileSwitch(t *testing.T) {
	skipWithoutDnsmasq(t)
	tests := []struct {
		name   string
		signal bool
		want   string // which upstream answers after the rewrite
	}{
		{"rewrite and SIGHUP moves traffic to the backup", true, "backup"},
		{"rewrite without SIGHUP changes nothing", false, "nextdns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nextdns, backup := upstreams(t)
			d := StartT(t, Options{StrictOrder: true, Servers: []string{nextdns.Upstream()}})
			if r, err := d.Query(context.Background(), "before.example", quick); err != nil || r.A != nextdns.AnswerAddr() {
				t.Fatalf("before the switch: %+v, %v", r, err)
			}
			if err := d.WriteServers(backup.Upstream(), nextdns.Upstream()); err != nil {
				t.Fatal(err)
			}
			if tc.signal {
				if err := d.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
			}
			want := map[string]*fakedns.Server{"nextdns": nextdns, "backup": backup}[tc.want]
			// dnsmasq applies a new list within about a millisecond of the signal; poll with a
			// generous deadline, then require every following query to go there.
			deadline := time.Now().Add(5 * time.Second)
			for i := 0; ; i++ {
				r, err := d.Query(context.Background(), fmt.Sprintf("poll%d.example", i), quick)
				if err == nil && r.A == want.AnswerAddr() {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("traffic never reached %s: last %+v, %v", tc.want, r, err)
				}
			}
			for i := range 10 {
				r, err := d.Query(context.Background(), fmt.Sprintf("after%d.example", i), quick)
				if err != nil || r.A != want.AnswerAddr() {
					t.Fatalf("after the switch: %+v, %v; want %s", r, err, tc.want)
				}
			}
		})
	}
}

func TestStubResendReachesTheNextServer(t *testing.T) {
	skipWithoutDnsmasq(t)
	nextdns, backup := upstreams(t)
	nextdns.Drop()
	d := StartT(t, Options{StrictOrder: true, Servers: []string{nextdns.Upstream(), backup.Upstream()}})
	r, err := d.Query(context.Background(), "resend.example", quick)
	if err != nil {
		t.Fatal(err)
	}
	if r.A != backup.AnswerAddr() || r.Sends != 2 {
		t.Errorf("reply %+v: want the backup's answer after a resend", r)
	}
	if r.RTT < quick.Interval {
		t.Errorf("answered in %v, before the resend at %v", r.RTT, quick.Interval)
	}
}

func TestStubGivesUp(t *testing.T) {
	skipWithoutDnsmasq(t)
	nextdns, _ := upstreams(t)
	nextdns.Drop()
	d := StartT(t, Options{Servers: []string{nextdns.Upstream()}})
	r, err := d.Query(context.Background(), "lost.example", quick)
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("reply %+v, err %v; want ErrNoAnswer", r, err)
	}
	if r.Sends != quick.Sends {
		t.Errorf("sent %d, want %d", r.Sends, quick.Sends)
	}
}

func TestEmptyServersFileRefuses(t *testing.T) {
	skipWithoutDnsmasq(t)
	d := StartT(t, Options{})
	r, err := d.Query(context.Background(), "none.example", quick)
	if err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("reply %+v, %v; want REFUSED", r, err)
	}
}

func TestStopCleansUp(t *testing.T) {
	skipWithoutDnsmasq(t)
	d, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pid, err := d.readPID(); err != nil || pid != d.PID() {
		t.Errorf("pid file says %d (%v), process is %d", pid, err, d.PID())
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Exited():
	default:
		t.Error("dnsmasq still running after Stop")
	}
	if _, err := os.Stat(d.Dir); !os.IsNotExist(err) {
		t.Errorf("world folder %s still there: %v", d.Dir, err)
	}
	if err := d.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	_, err := Start(context.Background(), Options{ListenAddr: netip.MustParseAddr("192.0.2.9")})
	if !errors.Is(err, ErrNotLoopback) && !errors.Is(err, ErrNoDnsmasq) {
		t.Fatalf("err %v, want ErrNotLoopback", err)
	}
}
