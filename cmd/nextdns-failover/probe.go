package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/nextdns-failover/nextdns-failover/internal/tinyjson"
	"github.com/nextdns-failover/nextdns-failover/pkg/config"
	"github.com/nextdns-failover/nextdns-failover/pkg/probe"
)

// probeRow is one line of `probe`'s output.
type probeRow struct {
	Upstream string
	Role     string
	Up       bool
	Result   string
	RTTms    float64
	Offline  bool
}

func cmdProbe(args []string, stdout, stderr io.Writer) int {
	fs, cfg := flags("probe", "[-c FILE] [--json]", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	s, ok := load(*cfg, stderr)
	if !ok {
		return exitFail
	}
	ups := append([]config.Upstream{}, s.Primary...)
	if s.Mode == config.Availability {
		ups = append(ups, s.Secondary...)
	}
	addrs := make([]netip.AddrPort, len(ups))
	for i, u := range ups {
		addrs[i] = u.AddrPort
	}
	p := &probe.Prober{Name: s.ProbeName, Timeout: s.Timeout}
	res := p.Round(context.Background(), addrs)
	rows := make([]probeRow, len(res))
	primaryUp := false
	for i, r := range res {
		role := "primary"
		if i >= len(s.Primary) {
			role = "secondary"
		} else if r.Up {
			primaryUp = true
		}
		result := r.Rcode
		if r.TCP {
			result += " (tcp)"
		}
		if r.Err != nil {
			result = r.Err.Error()
		}
		rows[i] = probeRow{Upstream: ups[i].String(), Role: role, Up: r.Up, Result: result, RTTms: float64(r.RTT) / float64(time.Millisecond), Offline: r.Offline}
	}
	if *asJSON {
		var w tinyjson.Writer
		w.Open("", '[')
		for _, r := range rows {
			w.Open("", '{')
			w.String("upstream", r.Upstream)
			w.String("role", r.Role)
			w.Bool("up", r.Up)
			w.String("result", r.Result)
			w.Float("rtt_ms", r.RTTms)
			w.Bool("offline", r.Offline)
			w.Close('}')
		}
		w.Close(']')
		stdout.Write(w.Bytes())
	} else {
		fmt.Fprintf(stdout, "%-32s %-10s %-5s %-9s %s\n", "UPSTREAM", "ROLE", "UP", "RTT", "RESULT")
		for _, r := range rows {
			rtt := "-"
			if r.Up {
				rtt = fmt.Sprintf("%.1fms", r.RTTms)
			}
			fmt.Fprintf(stdout, "%-32s %-10s %-5s %-9s %s\n", r.Upstream, r.Role, map[bool]string{true: "yes", false: "NO"}[r.Up], rtt, r.Result)
		}
	}
	if !primaryUp {
		return exitFail
	}
	return exitOK
}
