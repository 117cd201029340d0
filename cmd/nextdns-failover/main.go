// Command nextdns-failover keeps a router's DNS on NextDNS while it answers and fails over to
// backup resolvers when it does not, by steering dnsmasq's servers-file.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
)

// version is set at build time with -ldflags '-X main.version=...'.
var version = "dev"

// Exit codes: 0 success, 1 failure (invalid config, no primary up...), 2 usage, 3 not running.
const (
	exitOK         = 0
	exitFail       = 1
	exitUsage      = 2
	exitNotRunning = 3
)

type command struct {
	name, args, help string
	run              func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "[-c FILE] [-dhcp FILE] [-user NAME] [-v]", "the watchdog daemon (SIGHUP reloads the config, SIGTERM leaves the static list)", cmdRun},
		{"check", "[-c FILE] [-root DIR]", "validate the config, audit dnsmasq's config for leaks and server lines ahead of ours, find local NextDNS forwarders", cmdCheck},
		{"render", "[-c FILE] [--state healthy|failover|stopped] [--write]", "print (or write) the servers-file for a state", cmdRender},
		{"probe", "[-c FILE] [--json]", "probe every upstream once now", cmdProbe},
		{"status", "[-c FILE] [--json]", "show the watchdog's state", cmdStatus},
		{"force", "primary|secondary [-c FILE] [--for DURATION] [--persist]", "force a side until `auto` (or for a while)", cmdForce},
		{"auto", "[-c FILE]", "end a forced side: back to automatic", cmdAuto},
		{"version", "", "print the version", cmdVersion},
	}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "nextdns-failover: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: nextdns-failover COMMAND [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n           %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintf(w, "\nThe config is %s unless -c names another. Run a command with -h for its flags.\n", config.DefaultPath)
}

// flags makes a subcommand's flag set with -c; parse returns an exit code < 0 to go on.
func flags(name, args string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: nextdns-failover %s %s\n", name, args)
		fs.PrintDefaults()
	}
	cfg := fs.String("c", config.DefaultPath, "the UCI config `file`")
	return fs, cfg
}

// parse parses args, and returns -1 to go on, or the exit code to return (0 for -h).
func parse(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "nextdns-failover %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	return -1
}

// load reads the config, printing its problems on failure.
func load(path string, stderr io.Writer) (*config.Settings, bool) {
	s, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return nil, false
	}
	return s, true
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if code := parse(fs, args); code >= 0 {
		return code
	}
	fmt.Fprintf(stdout, "nextdns-failover %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
