package status

import (
	"time"

	"github.com/nextdns-failover/nextdns-failover/internal/tinyjson"
)

// JSON is the status file's content. The field names are the documented interface for scripts.
func (st *Status) JSON() []byte {
	var w tinyjson.Writer
	w.Open("", '{')
	w.String("version", st.Version)
	w.String("config", st.Config)
	w.Int("pid", int64(st.PID))
	w.String("mode", st.Mode)
	w.String("state", st.State)
	w.Time("since", st.Since)
	w.String("reason", st.Reason)
	w.Strings("servers", st.Servers)
	if st.Override != "" {
		w.String("override", st.Override)
		w.Time("override_until", st.OverrideUntil)
	}
	w.Open("upstreams", '[')
	for _, u := range st.Upstreams {
		w.Open("", '{')
		w.String("address", u.Address)
		w.String("role", u.Role)
		w.Bool("up", u.Up)
		w.String("rtt", time.Duration(u.RTT).String())
		w.Int("good", int64(u.Good))
		w.Int("bad", int64(u.Bad))
		if u.LastError != "" {
			w.String("last_error", u.LastError)
		}
		w.Time("last_probe", u.LastProbe)
		w.Close('}')
	}
	w.Close(']')
	c := st.Counters
	w.Open("counters", '{')
	for _, f := range counterFields(&c) {
		w.Uint(f.name, *f.v)
	}
	w.Close('}')
	w.String("hold_down", time.Duration(st.HoldDown).String())
	w.Time("updated", st.Updated)
	w.String("stale_after", time.Duration(st.StaleAfter).String())
	if st.Problem != "" {
		w.String("problem", st.Problem)
	}
	if len(st.Problems) > 0 {
		w.Strings("problems", st.Problems)
	}
	if st.Passive != "" {
		w.String("passive", st.Passive)
	}
	if l := st.LinkIP; l != nil {
		w.Open("link_ip", '{')
		w.Time("last_ok", l.LastOK)
		w.String("answer", l.Answer)
		w.String("last_error", l.LastError)
		w.Time("checked", l.Checked)
		w.Close('}')
	}
	w.Close('}')
	return w.Bytes()
}

type counterField struct {
	name string
	v    *uint64
}

func counterFields(c *Counters) []counterField {
	return []counterField{
		{"rounds", &c.Rounds}, {"probes", &c.Probes}, {"probe_errors", &c.ProbeErrors}, {"confirms", &c.Confirms},
		{"failovers", &c.Failovers}, {"failbacks", &c.Failbacks}, {"switches", &c.Switches},
		{"signals", &c.Signals}, {"signal_errors", &c.SignalErrors}, {"write_errors", &c.WriteErrors},
		{"reloads", &c.Reloads},
	}
}

// Parse reads a status file's content.
func Parse(b []byte) (*Status, error) {
	o, err := tinyjson.ParseObject(b)
	if err != nil {
		return nil, err
	}
	st := &Status{
		Version: o.Str("version"), Config: o.Str("config"), PID: int(o.Num("pid")), Mode: o.Str("mode"),
		State: o.Str("state"), Since: o.Time("since"), Reason: o.Str("reason"), Servers: o.Strings("servers"),
		Override: o.Str("override"), OverrideUntil: o.Time("override_until"),
		HoldDown: Duration(o.Duration("hold_down")), Updated: o.Time("updated"),
		StaleAfter: Duration(o.Duration("stale_after")), Problem: o.Str("problem"),
		Problems: o.Strings("problems"), Passive: o.Str("passive"),
	}
	if l := o.Obj("link_ip"); l != nil {
		st.LinkIP = &LinkIP{LastOK: l.Time("last_ok"), Answer: l.Str("answer"), LastError: l.Str("last_error"), Checked: l.Time("checked")}
	}
	for _, u := range o.Objs("upstreams") {
		st.Upstreams = append(st.Upstreams, Upstream{
			Address: u.Str("address"), Role: u.Str("role"), Up: u.Bool("up"), RTT: Duration(u.Duration("rtt")),
			Good: int(u.Num("good")), Bad: int(u.Num("bad")), LastError: u.Str("last_error"), LastProbe: u.Time("last_probe"),
		})
	}
	c := o.Obj("counters")
	for _, f := range counterFields(&st.Counters) {
		*f.v = uint64(c.Num(f.name))
	}
	return st, nil
}
