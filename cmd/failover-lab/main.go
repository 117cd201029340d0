// Command failover-lab builds small DNS worlds on loopback (a real dnsmasq, a fake NextDNS, a
// fake backup, clients that resend like real stub resolvers, and for two strategies the real
// nextdns-failover daemon) and measures how five dnsmasq setups behave in ten scenarios, each
// fault at five phases against the daemon's probe rounds, with musl and glibc clients.
//
//	failover-lab -demo  -bin bin/nextdns-failover            one narrated scenario, about a minute
//	failover-lab -bench -bin bin/nextdns-failover -out results  every strategy and scenario (about 12 min)
//	failover-lab -bench -phases 1 -fault 20s -loss 30s -idle 10s ...  a quick trial of every scenario
//	failover-lab -smoke -bin bin/nextdns-failover            a short check for make test
//
// It only ever uses loopback addresses (127.42.x.y), and stops everything it starts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nextdns-failover/nextdns-failover/internal/dnsmasqtest"
)

// options are the command line.
type options struct {
	demo, bench, smoke bool
	bin                string
	out                string
	stub               dnsmasqtest.Stub   // demo, smoke
	stubs              []dnsmasqtest.Stub // bench
	rate               float64
	strategies         []string
	scenarios          []string
	parallel           int
	keep               bool
	raw                bool
	shape              Shape
	baseline           string
	timings            []string // name=value options for the daemon's config
}

// worldOptions are the daemon's options each world sets itself: -set may not give them.
var worldOptions = []string{"mode", "primary", "secondary", "servers_file", "pid_file", "status_file", "dhcp_config", "enabled"}

// optionName is what -set accepts as an option name: the daemon's config checks the rest.
var optionName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// stubModels are the client models by name.
var stubModels = map[string]dnsmasqtest.Stub{"musl": dnsmasqtest.Musl, "glibc": dnsmasqtest.Glibc}

// defaultParallel is how many worlds the bench runs at once: the 13 worlds of the ten-minute
// loss set the bench's length, and 40 slots finish every other world within it, at a third of
// the load of running all 130 at once (on 2 shared cores, a load that stalls probes).
const defaultParallel = 40

// defaultRate is the client load per world, in queries a second: enough for sub-second
// timelines, modest enough that 35 worlds side by side stay light on a 2-core machine.
const defaultRate = 10

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "failover-lab:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case o.demo:
		err = runDemo(ctx, o, stdout)
	case o.bench:
		err = runBench(ctx, o, stdout)
	case o.smoke:
		err = runSmoke(ctx, o, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "failover-lab:", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("failover-lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.demo, "demo", false, "run one narrated scenario (about a minute)")
	fs.BoolVar(&o.bench, "bench", false, "run every strategy in every scenario and write the results")
	fs.BoolVar(&o.smoke, "smoke", false, "run a short check of failover and fail-back (under a minute); exit 1 on failure")
	fs.StringVar(&o.bin, "bin", "bin/nextdns-failover", "the nextdns-failover binary to run")
	fs.StringVar(&o.out, "out", "", "folder for results (bench: required-ish, default results; demo: default a temporary folder)")
	stub := fs.String("stub", "musl", "demo, smoke: client stub resolver model: musl (resend every 2.5 s, give up at 5 s) or glibc (5 s per try, two tries)")
	stubs := fs.String("stubs", "musl,glibc", "bench: client models; the clients take turns")
	fs.Float64Var(&o.rate, "rate", defaultRate, "client queries a second per world (all models together)")
	strats := fs.String("strategies", "", "comma-separated strategies to run (default all: nextdns-only,strict-order,default-order,availability,privacy)")
	scens := fs.String("scenarios", "", "bench: comma-separated scenarios to run (default all: "+strings.Join(scenarioKeys, ",")+")")
	fs.DurationVar(&o.shape.Warmup, "warmup", defaultWarmup, "bench: healthy time before each fault, before the phase's offset (keep it a multiple of the interval)")
	fs.IntVar(&o.shape.Phases, "phases", defaultPhases, "bench: phases against the daemon's probe rounds at which each fault runs")
	fs.DurationVar(&o.shape.Fault, "fault", defaultFaultLen, "bench: length of each fault (loss10: -loss)")
	fs.DurationVar(&o.shape.Loss, "loss", defaultLossLen, "bench: length of the 10% loss")
	fs.DurationVar(&o.shape.Idle, "idle", defaultIdleLen, "bench: the idle LAN before the idle blackhole")
	fs.StringVar(&o.baseline, "baseline", "", "bench: an earlier bench.json whose daemon rows are shown as \"before\"")
	fs.IntVar(&o.parallel, "parallel", defaultParallel, "bench: worlds run at once, longest first (0 = all, at most 199)")
	fs.BoolVar(&o.keep, "keep", false, "keep the worlds' folders (logs, configs, servers-files)")
	set := fs.String("set", "", "bench, demo: daemon options, e.g. interval=5s,fail_after=1,passive=0 (default: none, the daemon's defaults)")
	fs.BoolVar(&o.raw, "raw", false, "bench: also write every client query of every world to OUT/runs/ (large)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	n := 0
	for _, b := range []bool{o.demo, o.bench, o.smoke} {
		if b {
			n++
		}
	}
	if n != 1 || fs.NArg() != 0 {
		fs.Usage()
		return nil, errors.New("give exactly one of -demo, -bench, -smoke")
	}
	var ok bool
	if o.stub, ok = stubModels[*stub]; !ok {
		return nil, fmt.Errorf("-stub %q: valid are musl, glibc", *stub)
	}
	for _, n := range splitList(*stubs) {
		s, ok := stubModels[n]
		if !ok {
			return nil, fmt.Errorf("-stubs %q: valid are musl, glibc", n)
		}
		o.stubs = append(o.stubs, s)
	}
	if len(o.stubs) == 0 {
		return nil, errors.New("-stubs: give at least one of musl, glibc")
	}
	if o.rate <= 0 || o.rate > 200 {
		return nil, fmt.Errorf("-rate %v: give 0 < rate <= 200", o.rate)
	}
	if o.shape.Phases < 1 || o.shape.Phases > 20 {
		return nil, fmt.Errorf("-phases %d: give 1 to 20", o.shape.Phases)
	}
	if o.shape.Fault < 10*time.Second || o.shape.Loss < 10*time.Second || o.shape.Idle < 0 || o.shape.Warmup < 10*time.Second {
		return nil, errors.New("-fault, -loss and -warmup: give at least 10s; -idle: 0 or more")
	}
	for _, kv := range splitList(*set) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" || !optionName.MatchString(k) || slices.Contains(worldOptions, k) {
			return nil, fmt.Errorf("-set %q: give name=value with a daemon option (e.g. interval=5s, passive=0); the world sets %s itself", kv, strings.Join(worldOptions, ", "))
		}
		o.timings = append(o.timings, kv)
	}
	interval, err := daemonInterval(o.timings)
	if err != nil {
		return nil, err
	}
	o.shape.Interval = interval
	o.strategies = splitList(*strats)
	o.scenarios = splitList(*scens)
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// worldRoot makes the parent folder of the worlds: 0755, because dnsmasq reads its
// servers-file as nobody.
// setup resolves the daemon binary and makes the worlds' root folder; done removes the folder
// unless -keep was given.
func setup(o *options) (bin, root string, done func(), err error) {
	if bin, err = filepath.Abs(o.bin); err != nil {
		return "", "", nil, err
	}
	if root, err = worldRoot(); err != nil {
		return "", "", nil, err
	}
	done = func() {
		if !o.keep {
			os.RemoveAll(root)
		}
	}
	return bin, root, done, nil
}

func worldRoot() (string, error) {
	dir, err := os.MkdirTemp("", "failover-lab-")
	if err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o755)
}
