package status

import (
	"bufio"
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var now = time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)

func sample(state string) *Status {
	st := &Status{
		Version: "0.1.0-1", Config: "/etc/config/nextdns-failover", PID: 1234, Mode: "availability",
		State: state, Since: now.Add(-83 * time.Second), Servers: []string{"45.90.28.0", "45.90.30.0"},
		Upstreams: []Upstream{
			{Address: "45.90.28.0", Role: "primary", Up: true, RTT: Duration(12300 * time.Microsecond), Good: 40},
			{Address: "45.90.30.0", Role: "primary", Up: true, RTT: Duration(14100 * time.Microsecond), Good: 40},
			{Address: "9.9.9.9", Role: "secondary", Up: true, RTT: Duration(9800 * time.Microsecond), Good: 40},
			{Address: "149.112.112.112", Role: "secondary", Up: true, RTT: Duration(10100 * time.Microsecond), Good: 40},
		},
		Counters: Counters{Rounds: 812, Probes: 3248, ProbeErrors: 6, Failovers: 1, Failbacks: 1, Switches: 3, Signals: 3, Reloads: 1},
		HoldDown: Duration(30 * time.Second), Updated: now.Add(-4 * time.Second), StaleAfter: Duration(29 * time.Second),
		Reason: "2 of 2 NextDNS upstreams up",
	}
	for i := range st.Upstreams {
		st.Upstreams[i].LastProbe = st.Updated
	}
	st.Passive = "on"
	switch state {
	case "healthy":
		st.Problems = []string{"a server= line in /tmp/dnsmasq.d/nextdns.conf:2 comes before the servers-file"}
		st.LinkIP = &LinkIP{LastOK: now.Add(-5 * time.Minute), Checked: now.Add(-5 * time.Minute), Answer: "203.0.113.7"}
	case "failover":
		st.Servers = []string{"9.9.9.9", "149.112.112.112"}
		st.Reason = "all 2 NextDNS upstreams down, 2 of 2 backups up; hold-down 30s"
		for i := 0; i < 2; i++ {
			u := &st.Upstreams[i]
			u.Up, u.Good, u.Bad, u.LastError = false, 0, 7, "timeout after 2s (3 sends)"
		}
	case "offline":
		st.Passive = "off (no CAP_NET_RAW)"
		st.LinkIP = &LinkIP{LastOK: now.Add(-2 * time.Hour), Checked: now.Add(-time.Minute), Answer: "203.0.113.7", LastError: "uclient-fetch: exit 4 (network)"}
		st.Reason = "all 2 NextDNS and 2 backup upstreams down; list unchanged"
		for i := range st.Upstreams {
			u := &st.Upstreams[i]
			u.Up, u.Good, u.Bad, u.LastError = false, 0, 12, "network unreachable (router offline)"
		}
	case "stopped":
		st.Servers = []string{"45.90.28.0", "45.90.30.0", "9.9.9.9", "149.112.112.112"}
		st.Reason = "the watchdog stopped"
	case "forced-secondary":
		st.Servers = []string{"9.9.9.9", "149.112.112.112"}
		st.Override, st.OverrideUntil = "secondary", now.Add(25*time.Minute)
		st.Reason = "manual override (nextdns-failover force secondary)"
	case "stale":
		st.State = "healthy"
		st.Updated = now.Add(-10 * time.Minute)
	}
	return st
}

func TestFormatGolden(t *testing.T) {
	t.Setenv("TZ", "UTC")
	time.Local = time.UTC
	for _, state := range []string{"healthy", "failover", "offline", "stopped", "forced-secondary", "stale"} {
		t.Run(state, func(t *testing.T) {
			var b bytes.Buffer
			var warnings []string
			if state == "healthy" {
				warnings = []string{"/etc/config/dhcp:14: DHCP option 6 hands clients 1.1.1.1, not the router: they bypass NextDNS; fix: uci del_list dhcp.lan.dhcp_option='6,1.1.1.1'"}
			}
			if err := Format(&b, sample(state), now, warnings); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", state+".golden")
			if *update {
				os.WriteFile(golden, b.Bytes(), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if b.String() != string(want) {
				t.Errorf("status output differs from %s:\n%s", golden, b.String())
			}
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, state := range []string{"healthy", "failover", "forced-secondary"} {
		st := sample(state)
		st.Problem = "signal dnsmasq: \"quoted\"\nnew line"
		got, err := Parse(st.JSON())
		if err != nil {
			t.Fatal(err)
		}
		// Times lose their monotonic part and location in JSON; compare them as instants.
		if !got.Since.Equal(st.Since) || !got.Updated.Equal(st.Updated) || !got.OverrideUntil.Equal(st.OverrideUntil) {
			t.Errorf("%s: times changed", state)
		}
		got.Since, got.Updated, got.OverrideUntil = st.Since, st.Updated, st.OverrideUntil
		for i := range got.Upstreams {
			if !got.Upstreams[i].LastProbe.Equal(st.Upstreams[i].LastProbe) {
				t.Errorf("%s: last_probe changed", state)
			}
			got.Upstreams[i].LastProbe = st.Upstreams[i].LastProbe
		}
		if !reflect.DeepEqual(got, st) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", state, got, st)
		}
	}
}

func TestWriteReadAndStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "status.json")
	if _, err := Read(path); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("missing file: %v", err)
	}
	st := sample("healthy")
	if err := Write(path, st); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil || got.State != "healthy" {
		t.Fatalf("%v %+v", err, got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	if got.Stale(now) || !got.Stale(now.Add(time.Minute)) {
		t.Error("staleness wrong")
	}
	os.WriteFile(path, []byte("{\"state\": "), 0o644)
	if _, err := Read(path); err == nil {
		t.Error("a broken status file was accepted")
	}
}

// TestMetricsParseBack reads the metrics the way a Prometheus text parser would: every sample
// line is NAME{LABELS} VALUE with a declared TYPE, and the values are the status's.
func TestMetricsParseBack(t *testing.T) {
	st := sample("failover")
	st.State = "failover"
	text := Metrics(st)
	types := map[string]string{}
	samples := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		key := line[:i]
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		name := key
		if j := strings.IndexByte(key, '{'); j >= 0 {
			name = key[:j]
			if !strings.HasSuffix(key, "}") {
				t.Fatalf("bad labels %q", line)
			}
		}
		if types[name] == "" {
			t.Errorf("sample %s has no TYPE", name)
		}
		samples[key] = v
	}
	want := map[string]float64{
		`nextdns_failover_state{state="failover"}`:                                   1,
		`nextdns_failover_state{state="healthy"}`:                                    0,
		`nextdns_failover_upstream_up{upstream="45.90.28.0",role="primary"}`:         0,
		`nextdns_failover_upstream_up{upstream="9.9.9.9",role="secondary"}`:          1,
		`nextdns_failover_upstream_rtt_seconds{upstream="9.9.9.9",role="secondary"}`: 0.0098,
		`nextdns_failover_failovers_total`:                                           1,
		`nextdns_failover_failbacks_total`:                                           1,
		`nextdns_failover_probes_total`:                                              3248,
		`nextdns_failover_probe_errors_total`:                                        6,
	}
	for k, v := range want {
		if got, ok := samples[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
}

// Issue 15.6: a write that keeps failing says the same thing every time, naming the file and
// not the temporary one; the status file is rewritten in place when no second copy fits.
func TestWriteErrorsNameTheFile(t *testing.T) {
	// A name of 250 bytes is valid, but the temporary name beside it (".NAME.123456") is too
	// long: every attempt fails creating a differently named temporary file.
	path := filepath.Join(t.TempDir(), strings.Repeat("m", 250))
	e1, e2 := WriteFileAtomic(path, []byte("x")), WriteFileAtomic(path, []byte("y"))
	if e1 == nil || e2 == nil || e1.Error() != e2.Error() || !strings.HasPrefix(e1.Error(), path+": ") {
		t.Errorf("errors %v / %v: want the same message, starting with the file's path", e1, e2)
	}
}

func TestWriteFallsBackToInPlace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "status.json")
	if err := Write(path, sample("healthy")); err != nil {
		t.Fatal(err)
	}
	// A temporary file cannot be made beside it (here: the folder is not writable by us, as a
	// full tmpfs refuses a new file), but the file itself can be rewritten.
	os.Chmod(path, 0o666)
	os.Chmod(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	if os.Geteuid() == 0 {
		t.Skip("root creates files in a read-only folder")
	}
	if err := Write(path, sample("failover")); err != nil {
		t.Fatalf("in place: %v", err)
	}
	if st, err := Read(path); err != nil || st.State != "failover" {
		t.Errorf("after the in-place write: %+v, %v", st, err)
	}
}
