package dnsmasq

import (
	"slices"
	"strings"
	"testing"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
)

// FuzzConfigToServersFile follows the whole path from UCI text to servers-file: whatever the
// config holds, every rendered line is a comment or server=<IP literal>[#<port>], and every
// server listed is one the config names (a backup never appears in privacy mode).
func FuzzConfigToServersFile(f *testing.F) {
	const head = "config settings 'settings'\n"
	for _, seed := range []string{
		head + "\tlist primary '45.90.28.0'\n\tlist primary '45.90.30.0'\n\tlist secondary '9.9.9.9'\n\tlist secondary '149.112.112.112'\n",
		head + "\toption mode 'privacy'\n\tlist primary '127.0.0.1#5353'\n\tlist primary '2a07:a8c0::ab:cd12'\n",
		head + "\tlist primary '45.90.28.0\nserver=6.6.6.6'\n",
		head + "\tlist primary \"45.90.28.0\\nserver=6.6.6.6\"\n",
		head + "\tlist primary '45.90.28.0#53#54'\n",
		head + "\tlist primary '/lan/45.90.28.0'\n",
		head + "\tlist primary '45.90.28.0@eth0'\n",
		head + "\tlist primary 'fe80::1%br-lan'\n",
		head + "\tlist primary '45.90.28.0'\n\tlist secondary '9.9.9.9\x00server=6.6.6.6'\n",
		head + "\tlist primary '" + strings.Repeat("4", 5000) + "'\n",
		head + "\tlist primary '45.90.28.0'\n\tlist secondary '\xff\xfe9.9.9.9'\n",
		head + "\tlist primary ' 45.90.28.0'\n\tlist secondary '9.9.9.9 '\n",
		head + "\tlist primary '45.90.28.0#0'\n\tlist secondary '9.9.9.9#65536'\n",
		head + "\tlist primary 'dns.nextdns.io'\n",
		head + "\tlist primary '::ffff:45.90.28.0'\n",
	} {
		f.Add(seed, uint8(0))
		f.Add(seed, uint8(0b1010))
	}
	f.Fuzz(func(t *testing.T, text string, downMask uint8) {
		s, err := config.Read("/etc/config/nextdns-failover", strings.NewReader(text))
		if err != nil {
			return
		}
		configured := append(slices.Clone(s.Primary), s.Secondary...)
		up := func(u config.Upstream) bool {
			i := slices.Index(configured, u)
			return i < 0 || downMask&(1<<(i%8)) == 0
		}
		for _, st := range States() {
			servers := Plan(s, st, up)
			out, err := Render(st, servers)
			if err != nil {
				if len(s.Primary) > 0 {
					t.Fatalf("a valid config rendered no file for %s: %v", st, err)
				}
				continue
			}
			if err := ValidateFile(out); err != nil {
				t.Fatalf("%s: %v\n%s", st, err, out)
			}
			for _, u := range servers {
				if !slices.Contains(configured, u) {
					t.Fatalf("%s lists %s, which the config does not name", st, u)
				}
				if s.Mode == config.Privacy && !slices.Contains(s.Primary, u) {
					t.Fatalf("privacy mode lists the backup %s in state %s", u, st)
				}
			}
		}
	})
}
