package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// defaultConfigPath is the shipped default config, relative to the repository root.
const defaultConfigPath = "files/etc/config/nextdns-failover"

// fallbackConfig is the default config's settings section without its comments, used when
// the lab runs outside the repository.
const fallbackConfig = `config settings 'settings'
	option enabled '1'
	option mode 'availability'
	list primary '45.90.28.0'
	list primary '45.90.30.0'
	list secondary '9.9.9.9'
	list secondary '149.112.112.112'
`

// ownLines are the default config's lines the lab replaces with the world's values.
var ownLines = regexp.MustCompile(`^\s*(list\s+primary|list\s+secondary|option\s+mode|option\s+servers_file|option\s+pid_file|option\s+status_file|option\s+dhcp_config)\b`)

// defaultConfigText reads the shipped default config from the repository the lab runs in
// (walking up from the working folder), or returns the fallback.
func defaultConfigText() string {
	dir, err := os.Getwd()
	if err != nil {
		return fallbackConfig
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, defaultConfigPath)); err == nil {
			return string(b)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return fallbackConfig
		}
		dir = parent
	}
}

// daemonConfig is the shipped default config with the world's upstreams, mode and paths in
// place of the defaults, plus any options (name=value) the caller passes, which replace the
// default config's own lines for them: the bench passes none, so the daemon's defaults are
// what it measures.
func daemonConfig(mode string, primary, secondary []string, serversFile, pidFile, statusFile, dhcpConfig string, timings []string) string {
	var b strings.Builder
	inserted := false
	var set []*regexp.Regexp // the default config's own lines for the options given
	for _, t := range timings {
		k, _, _ := strings.Cut(t, "=")
		set = append(set, regexp.MustCompile(`^\s*option\s+`+regexp.QuoteMeta(k)+`\b`))
	}
	for _, line := range strings.SplitAfter(defaultConfigText(), "\n") {
		if ownLines.MatchString(line) || slices.ContainsFunc(set, func(r *regexp.Regexp) bool { return r.MatchString(line) }) {
			continue
		}
		b.WriteString(line)
		if !inserted && strings.HasPrefix(strings.TrimSpace(line), "config settings") {
			inserted = true
			fmt.Fprintf(&b, "\t# written by failover-lab: this world's upstreams and files\n")
			fmt.Fprintf(&b, "\toption mode '%s'\n", mode)
			for _, p := range primary {
				fmt.Fprintf(&b, "\tlist primary '%s'\n", p)
			}
			for _, s := range secondary {
				fmt.Fprintf(&b, "\tlist secondary '%s'\n", s)
			}
			fmt.Fprintf(&b, "\toption servers_file '%s'\n", serversFile)
			fmt.Fprintf(&b, "\toption pid_file '%s'\n", pidFile)
			fmt.Fprintf(&b, "\toption status_file '%s'\n", statusFile)
			fmt.Fprintf(&b, "\toption dhcp_config '%s'\n", dhcpConfig)
			for _, t := range timings {
				k, v, _ := strings.Cut(t, "=")
				fmt.Fprintf(&b, "\toption %s '%s'\n", k, v)
			}
		}
	}
	return b.String()
}
