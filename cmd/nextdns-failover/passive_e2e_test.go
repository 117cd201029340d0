package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nextdns-failover/nextdns-failover/internal/dnsmasqtest"
)

// Issue 11: with clients asking through dnsmasq, the passive path fails over long before the
// first probe round could have (the interval here is 30 s). Needs CAP_NET_RAW (root).
func TestPassiveFailsOverBeforeAProbeRound(t *testing.T) {
	l := newLab(t, "availability")
	l.writeConfig("availability", "\toption interval '30s'\n\toption fast_interval '1s'\n\toption timeout '300ms'\n")
	l.start()
	if p := l.status().Passive; p != "on" {
		t.Skipf("passive observation is %q here (needs CAP_NET_RAW)", p)
	}
	// Clients: a query every 50 ms, each resent after 300 ms like a stub resolver.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var answered, sent atomic.Int64
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			sent.Add(1)
			go func(i int) {
				qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
				defer qcancel()
				stub := dnsmasqtest.Stub{Name: "client", Interval: 300 * time.Millisecond, Sends: 5}
				if _, err := l.dnsmasq.Query(qctx, fmt.Sprintf("c%d-%d.example", time.Now().UnixNano(), i), stub); err == nil {
					answered.Add(1)
				}
			}(i)
			time.Sleep(50 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second) // the first round (at start) is over; the next one is 30 s away
	dark := time.Now()
	l.nextdns.Drop()
	l.waitState("failover")
	took := time.Since(dark)
	t.Logf("failed over %s after the blackhole (next probe round due about 29 s later); confirmations %d", took, l.status().Counters.Confirms)
	if took > 5*time.Second {
		t.Errorf("failover %s after the blackhole: want it from the passive path, within seconds", took)
	}
	if !strings.Contains(l.stderr.String(), "passive observation on") {
		t.Errorf("the log does not say passive observation is on")
	}
	if l.status().Counters.Confirms == 0 {
		t.Errorf("no confirmation probe counted")
	}
}
