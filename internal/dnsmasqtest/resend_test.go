package dnsmasqtest

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// TestResendAcrossASwitch records what dnsmasq 2.90 does with a client's resend of a query it
// first forwarded before a servers-file switch (strict-order): while the first server is still
// in the new list, the resend goes to it again, even behind a new first server, so a query in
// flight at a failover is lost; with the old server gone from the list, the resend goes to the
// new first server and is answered. The failover lab's numbers depend on this.
func TestResendAcrossASwitch(t *testing.T) {
	skipWithoutDnsmasq(t)
	tests := []struct {
		name       string
		after      func(nextdns, backup string) []string
		wantBackup bool
	}{
		{"backup first, NextDNS kept: the resend still goes to NextDNS", func(n, b string) []string { return []string{b, n} }, false},
		{"backup alone: the resend goes to the backup", func(n, b string) []string { return []string{b} }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nextdns, backup := upstreams(t)
			nextdns.Drop()
			d := StartT(t, Options{StrictOrder: true, Servers: []string{nextdns.Upstream()}})
			slow := Stub{Name: "slow", Interval: time.Second, Sends: 3}
			done := make(chan Reply, 1)
			go func() {
				r, _ := d.Query(context.Background(), "inflight.example", slow)
				done <- r
			}()
			deadline := time.Now().Add(5 * time.Second)
			for nextdns.Name("inflight.example").Received == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the query never reached NextDNS")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := d.WriteServers(tc.after(nextdns.Upstream(), backup.Upstream())...); err != nil {
				t.Fatal(err)
			}
			if err := d.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			r := <-done
			got := backup.Name("inflight.example").Received > 0 && r.A == backup.AnswerAddr()
			if got != tc.wantBackup {
				t.Errorf("answered by the backup: %v, want %v (reply %+v, NextDNS saw %d sends)", got, tc.wantBackup, r, nextdns.Name("inflight.example").Received)
			}
		})
	}
}
