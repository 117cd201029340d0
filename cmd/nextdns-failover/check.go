package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
	"github.com/nextdns-failover/nextdns-failover/pkg/dnsmasq"
	"github.com/nextdns-failover/nextdns-failover/pkg/uci"
)

// maxDHCPFile bounds the dhcp file read: real ones are a few KiB, and uci.Parse refuses a
// larger one (reading one byte more lets it see that).
const maxDHCPFile = uci.MaxInputSize

// target is the dnsmasq instance the settings steer.
type target struct {
	Instance *dnsmasq.Instance // nil when the dhcp config could not be read
	PIDFile  string            // pid_file, or the instance's
	Warnings []string          // from the dhcp audit, with the dhcp file's line
	Err      error             // why the dhcp config could not be used
}

// findTarget reads the dhcp config and audits it. It never fails: problems are in Err.
func findTarget(s *config.Settings) target {
	t := target{PIDFile: s.PIDFile}
	f, err := os.Open(s.DHCPConfig)
	if err != nil {
		t.Err = err
	} else {
		defer f.Close()
		dhcp, err := uci.Parse(filepath.Base(s.DHCPConfig), io.LimitReader(f, maxDHCPFile+1)) // uci refuses more than 1 MiB
		if err != nil {
			t.Err = fmt.Errorf("%s: %w", s.DHCPConfig, err)
		} else if inst, err := dnsmasq.FindInstance(dhcp, s.DnsmasqInstance); err != nil {
			t.Err = err
		} else {
			t.Instance = inst
			for _, w := range dnsmasq.Audit(dhcp, inst, s) {
				t.Warnings = append(t.Warnings, w.String())
			}
		}
	}
	if t.PIDFile == "" && t.Instance != nil {
		t.PIDFile = t.Instance.PIDFile
	}
	if t.PIDFile == "" {
		// Without a dhcp config: the only dnsmasq pid file there is, as on a stock router.
		if m, _ := filepath.Glob("/var/run/dnsmasq/dnsmasq.*.pid"); len(m) == 1 {
			t.PIDFile = m[0]
		}
	}
	return t
}

// pidFile resolves dnsmasq's pid file for the watchdog.
func pidFile(s *config.Settings) (string, error) {
	t := findTarget(s)
	if t.PIDFile != "" {
		return t.PIDFile, nil
	}
	if t.Err != nil {
		return "", fmt.Errorf("%w; set pid_file", t.Err)
	}
	return "", fmt.Errorf("no pid file for the dnsmasq instance; set pid_file")
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs, cfg := flags("check", "[-c FILE] [-root DIR]", stderr)
	root := fs.String("root", "/", "where the router's files are (`folder`): forwarder configs, dnsmasq's config files and conf-dirs are read under it")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	s, ok := load(*cfg, stderr)
	if !ok {
		return exitFail
	}
	fmt.Fprintf(stdout, "%s: valid (%s mode, %d NextDNS, %d backup upstreams)\n", *cfg, s.Mode, len(s.Primary), len(s.Secondary))
	if !s.Enabled {
		fmt.Fprintf(stdout, "note: enabled is 0: the service will not run the watchdog\n")
	}
	t := findTarget(s)
	if t.Instance != nil {
		fmt.Fprintf(stdout, "dnsmasq instance: %s (%s in %s)\n", t.Instance.Section, t.Instance.Ref, s.DHCPConfig)
	}
	if t.PIDFile != "" {
		fmt.Fprintf(stdout, "dnsmasq pid file: %s\n", t.PIDFile)
	}
	fmt.Fprintf(stdout, "servers-file:     %s\n", s.ServersFile)
	if t.Err != nil {
		fmt.Fprintf(stdout, "warning: cannot audit dnsmasq: %v\n", t.Err)
	}
	if t.PIDFile == "" {
		fmt.Fprintf(stdout, "warning: no dnsmasq pid file known: the watchdog cannot signal dnsmasq (set pid_file)\n")
	}
	for _, w := range t.Warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	checkForwarders(stdout, s, *root)
	// The dhcp list's global servers are among the warnings above; here the config files.
	section, confdir := "", ""
	if t.Instance != nil {
		section, confdir = t.Instance.Section, t.Instance.ConfDir
	}
	sc := dnsmasq.ScanConf(*root, section, confdir, dnsmasq.DefaultLimits)
	for _, l := range sc.Lines {
		fmt.Fprintf(stdout, "warning: %s\n", l)
	}
	for _, p := range sc.Problems {
		fmt.Fprintf(stdout, "warning: cannot check for server lines ahead of ours: %s\n", p)
	}
	return exitOK
}

// checkForwarders prints one line per local DNS proxy found (https-dns-proxy, stubby, the
// NextDNS CLI): what it is and whether our config has it in the right list.
func checkForwarders(stdout io.Writer, s *config.Settings, root string) {
	fs, problems := dnsmasq.FindForwarders(root)
	for _, f := range fs {
		level, line := dnsmasq.Placement(f, s)
		if level == "ok" {
			level = "forwarder"
		}
		fmt.Fprintf(stdout, "%s: %s\n", level, line)
	}
	for _, err := range problems {
		fmt.Fprintf(stdout, "warning: cannot check a local DNS forwarder: %v\n", err)
	}
}

func cmdRender(args []string, stdout, stderr io.Writer) int {
	fs, cfg := flags("render", "[-c FILE] [--state healthy|failover|stopped] [--write]", stderr)
	state := fs.String("state", "healthy", "the `state` whose list to render: healthy, failover or stopped")
	write := fs.Bool("write", false, "write the servers_file in place (creating its folder) instead of printing it")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	st, err := dnsmasq.ParseState(*state)
	if err != nil {
		fmt.Fprintf(stderr, "nextdns-failover render: %v\n", err)
		return exitUsage
	}
	s, ok := load(*cfg, stderr)
	if !ok {
		return exitFail
	}
	content, err := dnsmasq.Render(st, dnsmasq.Plan(s, st, nil))
	if err != nil {
		fmt.Fprintf(stderr, "nextdns-failover render: %v\n", err)
		return exitFail
	}
	if !*write {
		stdout.Write(content)
		return exitOK
	}
	changed, err := dnsmasq.WriteInPlace(s.ServersFile, content)
	if err != nil {
		fmt.Fprintf(stderr, "nextdns-failover render: %v\n", err)
		return exitFail
	}
	if changed {
		fmt.Fprintf(stdout, "%s: wrote the %s list\n", s.ServersFile, st)
	} else {
		fmt.Fprintf(stdout, "%s: already holds the %s list\n", s.ServersFile, st)
	}
	return exitOK
}
