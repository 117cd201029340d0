package main

import (
	"fmt"
	"html"
	"strings"
	"time"
)

// SVG layout, in pixels. Sized to read on a laptop screen and in a GitHub README.
const (
	svgWidth   = 960
	svgLeft    = 190 // lane titles
	svgRight   = 20
	svgTop     = 40
	svgRowH    = 14 // one row: NextDNS, backup or failed
	svgBandH   = 8  // the servers-file band under a daemon lane
	svgLaneGap = 26
)

var (
	colNext   = "#2e7d32"
	colBackup = "#ef6c00"
	colFail   = "#c62828"
	colDown   = "#9e9e9e"
	colDegr   = "#d7ccc8"
)

// timelineSVG draws, for one scenario, which upstream answered each client query of each
// run (one lane per run), the failures, and the fault shaded.
func timelineSVG(sc Scenario, runs []*Run) string {
	total := sc.Duration()
	plotW := float64(svgWidth - svgLeft - svgRight)
	x := func(d time.Duration) float64 { return float64(svgLeft) + plotW*d.Seconds()/total.Seconds() }
	laneH := 3*svgRowH + svgBandH + 4
	height := svgTop + len(runs)*(laneH+svgLaneGap) + 64

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	stub := ""
	if len(runs) > 0 {
		var names []string
		for _, st := range runs[0].Stubs {
			names = append(names, st.Name)
		}
		stub = ", " + strings.Join(names, " and ") + " clients"
	}
	fmt.Fprintf(&b, `<text x="10" y="18" font-size="14" font-weight="bold">%s%s</text>`+"\n", html.EscapeString(sc.Title), html.EscapeString(stub))

	// faults shaded behind everything
	var at time.Duration
	plotBottom := svgTop + len(runs)*(laneH+svgLaneGap) - svgLaneGap
	for _, p := range sc.Phases {
		if !p.NextDNS.Clean() || !p.Backup.Clean() {
			col := colDegr
			if !p.NextDNS.Answering() {
				col = colDown
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="0.35"><title>%s</title></rect>`+"\n",
				x(at), svgTop-6, x(at+p.Dur)-x(at), plotBottom-svgTop+12, col, html.EscapeString(describePhase(p)))
		}
		at += p.Dur
	}
	// time axis
	for s := time.Duration(0); s <= total; s += 10 * time.Second {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ccc" stroke-width="0.5"/>`+"\n", x(s), svgTop-6, x(s), plotBottom+6)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%ds</text>`+"\n", x(s), plotBottom+18, int(s.Seconds()))
	}

	for i, r := range runs {
		top := svgTop + i*(laneH+svgLaneGap)
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", top-8+svgRowH, html.EscapeString(r.Strategy.Title))
		rows := []struct {
			label, via, col string
		}{{"NextDNS", viaNextDNS, colNext}, {"backup", viaBackup, colBackup}, {"no answer", viaNone, colFail}}
		for j, row := range rows {
			y := top + 8 + j*svgRowH
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="%s">%s</text>`+"\n", svgLeft-6, y+svgRowH-4, row.col, row.label)
			// answered at once: solid; answered only after the client resent: pale
			var first, resent strings.Builder
			for _, q := range r.Queries {
				if q.Via != row.via {
					continue
				}
				m := &first
				if q.Via != viaNone && q.Sends > 1 {
					m = &resent
				}
				fmt.Fprintf(m, "M%.1f %dv%d", x(q.Sent), y+2, svgRowH-4)
			}
			if first.Len() > 0 {
				fmt.Fprintf(&b, `<path d="%s" stroke="%s" stroke-width="1.2"/>`+"\n", first.String(), row.col)
			}
			if resent.Len() > 0 {
				fmt.Fprintf(&b, `<path d="%s" stroke="%s" stroke-opacity="0.4" stroke-width="1.2"/>`+"\n", resent.String(), row.col)
			}
		}
		if r.Strategy.Daemon {
			y := top + 8 + 3*svgRowH + 2
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#555" font-size="9">servers-file</text>`+"\n", svgLeft-6, y+svgBandH-1)
			first, from := viaNextDNS, time.Duration(0)
			band := func(to time.Duration) {
				col := colNext
				if first == viaBackup {
					col = colBackup
				}
				fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s first</title></rect>`+"\n",
					x(from), y, max(x(to)-x(from), 0.5), svgBandH, col, first)
			}
			for _, sw := range r.Switches {
				band(sw.At)
				first, from = sw.First, sw.At
			}
			band(total)
		}
	}
	ly := plotBottom + 38
	fmt.Fprintf(&b, `<text x="10" y="%d" fill="#555">One mark per client query, at the time it was sent; pale: answered only after the client resent.</text>`+"\n", ly)
	fmt.Fprintf(&b, `<text x="10" y="%d" fill="#555">Shaded: NextDNS down (dark grey) or degraded (light). Band: the first server in dnsmasq's servers-file.</text>`+"\n", ly+14)
	b.WriteString("</svg>\n")
	return b.String()
}
