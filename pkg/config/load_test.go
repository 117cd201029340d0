package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigFile(t *testing.T) {
	s, err := Load("../../files/etc/config/nextdns-failover")
	if err != nil {
		t.Fatalf("the shipped default config is invalid:\n%v", err)
	}
	if s.Mode != Availability || len(s.Primary) != 2 || len(s.Secondary) != 2 || !s.Enabled {
		t.Errorf("default: %+v", s)
	}
	if s.Primary[0].String() != "45.90.28.0" || s.Secondary[0].String() != "9.9.9.9" {
		t.Errorf("default upstreams: %v %v", s.Primary, s.Secondary)
	}
	if s.Interval != DefaultInterval || s.ProbeName != DefaultProbeName || s.ServersFile != DefaultServersFile {
		t.Errorf("defaults not applied: %+v", s)
	}
}

func TestValid(t *testing.T) {
	cases := []struct {
		name  string
		body  string
		check func(*Settings) bool
	}{
		{"durations in every form", `
	list primary '45.90.28.0'
	option interval '30'
	option fast_interval '1.5s'
	option timeout '500ms'
	option hold_down '2m'`, func(s *Settings) bool {
			return s.Interval == 30*time.Second && s.FastInterval == 1500*time.Millisecond && s.Timeout == 500*time.Millisecond && s.HoldDown == 2*time.Minute
		}},
		{"a short interval takes the fast interval with it; a long timeout is allowed", `
	list primary '45.90.28.0'
	option interval '500ms'
	option timeout '3s'`, func(s *Settings) bool {
			return s.Interval == 500*time.Millisecond && s.FastInterval == 500*time.Millisecond && s.Timeout == 3*time.Second
		}},
		{"hold_down zero", `
	list primary '45.90.28.0'
	option hold_down '0'`, func(s *Settings) bool { return s.HoldDown == 0 }},
		{"ports and IPv6", `
	list primary '2a07:a8c0::ab:cd12'
	list primary '127.0.0.1#5353'
	list secondary '[::1]'`, nil},
		{"privacy with NextDNS and a loopback proxy", `
	option mode 'privacy'
	list primary '2a07:a8c1::ab:cd12#53'
	list primary '127.0.0.1#5353'`, func(s *Settings) bool {
			return s.Mode == Privacy && s.Primary[0].String() == "2a07:a8c1::ab:cd12" && s.Primary[1].String() == "127.0.0.1#5353"
		}},
		{"a single primary as an option", `
	option primary '45.90.30.0'
	option enabled 'no'`, func(s *Settings) bool { return len(s.Primary) == 1 && !s.Enabled }},
		{"probe name with final dot", `
	list primary '45.90.28.0'
	option probe_name 'Probe-Test.example.'`, func(s *Settings) bool { return s.ProbeName == "Probe-Test.example" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Read("test", strings.NewReader("config settings 'settings'"+c.body+"\n"))
			if c.name == "ports and IPv6" {
				// '[::1]' is not dnsmasq's form: brackets are refused.
				if err == nil {
					t.Fatal("bracketed IPv6 accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.check != nil && !c.check(s) {
				t.Errorf("unexpected settings: %+v", s)
			}
		})
	}
}

func TestProblems(t *testing.T) {
	cases := []struct {
		name string
		text string
		want []string // each a substring of one problem, in order
	}{
		{"no section", "config other 'x'\n", []string{"test:1: unknown section type 'other'", "test: no settings section"}},
		{"no primary", "config settings 'settings'\n\toption mode 'availability'\n", []string{"test:1: option 'primary': missing"}},
		{"everything at once", `config settings 'settings'
	option enabled 'maybe'
	option mode 'fast'
	list primary 'dns.nextdns.io'
	list primary '45.90.28.0#0'
	list primary '45.90.28.0@eth0'
	list secondary '/lan/192.168.1.1'
	option interval '0s'
	option timeout '-1'
	option fail_after '0'
	option recover_after 'x'
	option servers_file 'relative/path'
	option dnsmasq_instance 'a-b'
	option probe_name 'bad..name'
	option colour 'blue'
`, []string{
			"test:2: option 'enabled': \"maybe\" is not a boolean",
			"test:3: option 'mode': \"fast\" is not a mode (valid: availability, privacy)",
			"test:4: option 'primary': invalid upstream: \"dns.nextdns.io\": not an IP address",
			"test:5: option 'primary': invalid upstream: \"45.90.28.0#0\": port must be a number from 1 to 65535",
			"test:6: option 'primary': invalid upstream: \"45.90.28.0@eth0\": contains '@'",
			"test:7: option 'secondary': invalid upstream: \"/lan/192.168.1.1\": contains '/'",
			"test:8: option 'interval': \"0s\" is not a positive duration",
			"test:9: option 'timeout': \"-1\" is not a positive duration",
			"test:10: option 'fail_after': \"0\" is not a whole number from 1 to 100",
			"test:11: option 'recover_after': \"x\" is not a whole number",
			"test:12: option 'servers_file': \"relative/path\" is not a clean absolute path",
			"test:13: option 'dnsmasq_instance': \"a-b\" is not a UCI section name",
			"test:14: option 'probe_name': \"bad..name\" is not a DNS name",
			"test:15: option 'colour': unknown option (valid: enabled, mode, primary",
		}},
		{"privacy refuses a backup", `config settings 'settings'
	option mode 'privacy'
	list primary '45.90.28.7'
	list primary '1.1.1.1'
	list secondary '9.9.9.9'
`, []string{
			"test:4: option 'primary': 1.1.1.1 is not a NextDNS address",
			"test:5: option 'secondary': 9.9.9.9 is not a NextDNS address",
		}},
		{"hostile bytes are quoted", "config settings 'settings'\n\tlist primary \"1.2.3.4\nserver=6.6.6.6\"\n\tlist primary '1.2.3.4\t'\n\tlist primary '\xff\xfe'\n", []string{
			`test:2: option 'primary': invalid upstream: "1.2.3.4\nserver=6.6.6.6": contains a space, control or non-ASCII character`,
			`test:4: option 'primary': invalid upstream: "1.2.3.4\t"`,
			`test:5: option 'primary': invalid upstream: "\xff\xfe"`,
		}},
		{"a NUL byte", "config settings 'settings'\n\tlist primary '1.2.3.4\x00'\n", []string{"test:2: Parse error (NUL byte"}},
		{"duplicates", "config settings 'settings'\n\tlist primary '45.90.28.0'\n\tlist primary '45.90.28.0#53'\n\tlist secondary '45.90.28.0'\n", []string{
			"test:3: option 'primary': 45.90.28.0 is listed twice",
			"test:4: option 'secondary': 45.90.28.0 is also a primary upstream (line 2)",
		}},
		// Issue 15.9: the install's uci delete + add_list puts primary last; same verdict.
		{"same upstream in both lists, secondary first", "config settings 'settings'\n\tlist secondary '9.9.9.9'\n\tlist primary '45.90.28.0'\n\tlist primary '9.9.9.9'\n", []string{
			"test:4: option 'primary': 9.9.9.9 is also a secondary upstream (line 2)",
		}},
		{"link IP URL and passive", "config settings 'settings'\n\tlist primary '45.90.28.0'\n\toption link_ip_url 'http://link-ip.nextdns.io/abc/SECRET'\n\toption link_ip_interval '10s'\n\toption passive 'maybe'\n", []string{
			"test:3: option 'link_ip_url': is not an https:// URL",
			"test:4: option 'link_ip_interval': \"10s\" is shorter than 1m",
			"test:5: option 'passive': \"maybe\" is not a boolean",
		}},
		{"fast interval longer than the interval", "config settings 'settings'\n\tlist primary '45.90.28.0'\n\toption fast_interval '5s'\n\toption interval '2s'\n", []string{
			"test:3: option 'fast_interval': 5s is longer than interval 2s",
		}},
		{"a list where an option belongs", "config settings 'settings'\n\tlist primary '45.90.28.0'\n\tlist mode 'privacy'\n", []string{
			"test:3: option 'mode': is a list",
		}},
		{"uci syntax error", "config settings 'settings'\n\toption mode 'privacy\n", []string{"test:2: Parse error (EOF with unterminated '"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read("test", strings.NewReader(c.text))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(c.want) {
				t.Fatalf("%d problems, want %d:\n%v", len(lines), len(c.want), err)
			}
			for i, w := range c.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("problem %d:\n got %s\nwant %s", i+1, lines[i], w)
				}
			}
		})
	}
}

func TestNewOptions(t *testing.T) {
	s, err := Read("test", strings.NewReader("config settings 'settings'\n\tlist primary '45.90.28.0'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Passive || s.LinkIPURL != "" || s.LinkIPInterval != 30*time.Minute {
		t.Errorf("defaults: passive %v, link_ip_url %q, link_ip_interval %s", s.Passive, s.LinkIPURL, s.LinkIPInterval)
	}
	s, err = Read("test", strings.NewReader("config settings 'settings'\n\tlist primary '45.90.28.0'\n\toption passive '0'\n\toption link_ip_url 'https://link-ip.nextdns.io/abc/def'\n\toption link_ip_interval '1h'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Passive || s.LinkIPURL != "https://link-ip.nextdns.io/abc/def" || s.LinkIPInterval != time.Hour {
		t.Errorf("set: passive %v, link_ip_url %q, link_ip_interval %s", s.Passive, s.LinkIPURL, s.LinkIPInterval)
	}
	_, err = Read("test", strings.NewReader("config settings 'settings'\n\tlist primary '45.90.28.0'\n\toption link_ip_url 'http://x/SECRET'\n"))
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("a bad link_ip_url must be refused without repeating it: %v", err)
	}
}

func TestParseUpstream(t *testing.T) {
	good := map[string]string{
		"9.9.9.9": "9.9.9.9", "9.9.9.9#53": "9.9.9.9", "9.9.9.9#5353": "9.9.9.9#5353",
		"2620:fe::fe": "2620:fe::fe", "2620:fe::fe#853": "2620:fe::fe#853", "::ffff:1.2.3.4": "1.2.3.4",
	}
	for in, want := range good {
		u, err := ParseUpstream(in)
		if err != nil || u.String() != want {
			t.Errorf("ParseUpstream(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, in := range []string{"", "0.0.0.0", "::", "224.0.0.1", "fe80::1%eth0", "1.2.3.4#", "1.2.3.4#65536", "1.2.3.4#+5", "1.2.3.4 ", "1.2.3.4#53#53", "host", strings.Repeat("1", 100)} {
		if u, err := ParseUpstream(in); err == nil || !errors.Is(err, ErrUpstream) {
			t.Errorf("ParseUpstream(%q) = %v, %v; want an error", in, u, err)
		}
	}
}

func TestIsNextDNS(t *testing.T) {
	for in, want := range map[string]bool{"45.90.28.0": true, "45.90.30.255": true, "45.90.29.1": false, "2a07:a8c0::ab:cd12": true, "2a07:a8c1:8000::1": false, "9.9.9.9": false} {
		u, err := ParseUpstream(in)
		if err != nil {
			t.Fatal(err)
		}
		if IsNextDNS(u.Addr()) != want {
			t.Errorf("IsNextDNS(%s) = %v", in, !want)
		}
	}
}
