// Command mkpkg builds nextdns-failover's OpenWrt packages without the OpenWrt SDK: it
// cross-compiles the static binary for each OpenWrt architecture, gathers the router files
// from files/, and writes one .ipk (opkg, OpenWrt 24.10 and older) and/or .apk (apk-tools v3,
// OpenWrt 25.12) per architecture. Two runs from the same commit give byte-identical packages.
//
//	mkpkg -format ipk,apk -version 0.1.0 -release 1 -out dist -arch 'mips_24kc x86_64' -verify
//
// With -feed DIR it builds nothing: it copies the packages of -out into DIR/<arch>/ and writes
// the indexes a router reads, Packages, Packages.gz and Packages.sig (opkg, usign key
// -usign-key) and packages.adb (apk, key -index-key); -feed-keys DIR makes new keys for that.
//
//	mkpkg -feed dist/feed -out dist -version 0.1.0 -arch x86_64 -usign-key K.sec -index-key K.pem
//
// An architecture is an OpenWrt name (see `opkg print-architecture` on the router). mkpkg knows
// how Go targets every common one, with the rules of OpenWrt's lang/golang/golang-values.mk;
// any other is named with its Go settings: `-arch 'myarch=arm,GOARM=6'` or
// `-arch 'mips_4kec=mips,GOMIPS=softfloat'`.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Package metadata shared by every format and architecture.
const (
	pkgName        = "nextdns-failover"
	pkgDescription = "Keeps DNS answering when NextDNS is unreachable, without leaking queries while it works: a watchdog that steers dnsmasq between NextDNS and backup resolvers."
	pkgLicense     = "MIT"
	pkgURL         = "https://github.com/nextdns-failover/nextdns-failover"
	pkgMaintainer  = "nextdns-failover maintainers <maintainers@nextdns-failover.invalid>"
	pkgSection     = "net"
	binaryPath     = "/usr/sbin/nextdns-failover"
	configPath     = "/etc/config/nextdns-failover"
	mainPackage    = "./cmd/nextdns-failover"
)

// The size budget (issues 4 and 11), for the smallest common target: routers with 8-16 MB of
// flash hold the package in their overlay, and the NextDNS CLI's ipk (3.5 MB) is the bar to
// beat. mkpkg warns when a build is over it; the numbers belong in the README.
const (
	budgetArch    = "mips_24kc"
	budgetBinary  = 3_200_000
	budgetPackage = 1_100_000
)

// gcflags turns off inlining in the router binary: 65 KB less on mips_24kc and 134 KB less
// gzip'ed (the package is what the budget and the router's flash see). The daemon's hot path,
// one packet of dnsmasq's traffic through the header parser and the ledger, is about a
// microsecond either way, beside the kernel's ~15 µs per query.
const gcflags = "all=-l"

// pkgDepends is what the package needs on the router. The binary is static (CGO_ENABLED=0), so
// no libc. dnsmasq-full and dnsmasq-dhcpv6 declare `Provides: dnsmasq`, so stock routers and
// dnsmasq-full users both satisfy it, with opkg and with apk.
var pkgDepends = []string{"dnsmasq"}

// postInst runs (from OpenWrt's default_postinst, on a live router, before the uci-defaults
// script and before the service is enabled and started). On an upgrade procd would keep the
// old binary running, because the instance's command line did not change: restart it.
const postInst = `# nextdns-failover: after an upgrade, run the new binary.
if [ -z "${IPKG_INSTROOT}" ] && [ "${PKG_UPGRADE:-0}" = "1" ] && /etc/init.d/nextdns-failover enabled; then
	/etc/init.d/nextdns-failover restart
fi
`

// preRm runs on removal (from OpenWrt's default_prerm, before it stops and disables the
// service): stop the watchdog and give dnsmasq back exactly what the install changed. It must
// not `exit`, because older default_prerm versions source it without a subshell.
const preRm = `# nextdns-failover: stop the watchdog and restore dnsmasq's original settings.
case " $* " in
*" upgrade "*) ;; # opkg versions that run the old prerm on upgrade: keep the setup
*)
	if [ -z "${IPKG_INSTROOT}" ] && [ -x /usr/libexec/nextdns-failover/dnsmasq-setup ]; then
		/usr/libexec/nextdns-failover/dnsmasq-setup remove
	fi
	;;
esac
`

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mkpkg:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	formats  []string
	version  string
	release  string
	out      string
	archs    []target
	key      string
	verify   bool
	root     string // repository root: holds files/ and the main package
	mtime    time.Time
	parallel int
	feed     string // -feed: assemble and index the feed here instead of building
	feedKeys string // -feed-keys: make new feed keys here instead of building
	usignKey string // usign secret key for Packages.sig
	indexKey string // PEM private key for packages.adb
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fset := flag.NewFlagSet("mkpkg", flag.ContinueOnError)
	fset.SetOutput(stderr)
	format := fset.String("format", "ipk", "package formats: ipk, apk or ipk,apk")
	version := fset.String("version", "", "upstream version, e.g. 0.1.0 (required)")
	release := fset.String("release", "1", "package release")
	out := fset.String("out", "dist", "output folder")
	archList := fset.String("arch", "", "space-separated OpenWrt architectures; NAME=GOARCH[,GOARM=N][,GOMIPS=...] for others (required)")
	key := fset.String("key", "", "PEM private key to sign apk packages with (optional)")
	verify := fset.Bool("verify", false, "re-open every package built and check it")
	root := fset.String("root", ".", "repository root (holds files/ and cmd/nextdns-failover)")
	parallel := fset.Int("j", runtime.NumCPU(), "concurrent builds")
	feed := fset.String("feed", "", "instead of building, copy the packages of -out into FEED/<arch>/ and write the opkg and apk indexes")
	feedKeys := fset.String("feed-keys", "", "instead of building, make new feed signing keys in this folder")
	usignKey := fset.String("usign-key", "", "with -feed: usign secret key that signs Packages (Packages.sig)")
	indexKey := fset.String("index-key", "", "with -feed: PEM private key (EC or RSA) that signs packages.adb")
	if err := fset.Parse(args); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fset.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, fset.Arg(0))
	}
	o := &options{version: *version, release: *release, out: *out, key: *key, verify: *verify, root: *root, parallel: max(*parallel, 1),
		feed: *feed, feedKeys: *feedKeys, usignKey: *usignKey, indexKey: *indexKey}
	if o.feedKeys != "" {
		return o, nil
	}
	if (o.usignKey != "" || o.indexKey != "") && o.feed == "" {
		return nil, fmt.Errorf("%w: -usign-key and -index-key sign a feed: use them with -feed", errUsage)
	}
	for f := range strings.SplitSeq(*format, ",") {
		f = strings.TrimSpace(f)
		if f != "ipk" && f != "apk" {
			return nil, fmt.Errorf("%w: -format %q: want ipk, apk or ipk,apk", errUsage, *format)
		}
		if !slices.Contains(o.formats, f) {
			o.formats = append(o.formats, f)
		}
	}
	if err := checkVersion(o.version, o.release); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	archs, err := parseTargets(*archList)
	if err != nil {
		return nil, fmt.Errorf("%w: -arch: %v", errUsage, err)
	}
	o.archs = archs
	o.mtime, err = sourceDate(o.root)
	if err != nil {
		return nil, err
	}
	return o, nil
}

// checkVersion keeps the version and release to what opkg and apk both accept in a file name
// and a control field.
func checkVersion(version, release string) error {
	okChars := func(s string) bool {
		return s != "" && strings.IndexFunc(s, func(r rune) bool {
			return (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && r != '.' && r != '_' && r != '+' && r != '~'
		}) < 0
	}
	if !okChars(version) || version[0] < '0' || version[0] > '9' {
		return fmt.Errorf("-version %q: want digits and dots, e.g. 0.1.0", version)
	}
	if _, err := strconv.ParseUint(release, 10, 32); err != nil {
		return fmt.Errorf("-release %q: want a number, e.g. 1", release)
	}
	return nil
}

// sourceDate is every timestamp in the packages: SOURCE_DATE_EPOCH, else the last commit's
// time, else the Unix epoch (still reproducible, only less informative).
func sourceDate(root string) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("%w: SOURCE_DATE_EPOCH=%q is not a Unix time in seconds", errUsage, s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	out, err := exec.Command("git", "-C", root, "log", "-1", "--format=%ct").Output()
	if n, perr := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && perr == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Unix(0, 0).UTC(), nil
}

// target is one OpenWrt architecture and the Go settings that build for it.
type target struct {
	Arch   string   // OpenWrt name, e.g. mips_24kc
	GOARCH string   // e.g. mips
	Env    []string // extra settings, e.g. GOMIPS=softfloat, GOARM=7
}

// key identifies the binary: targets with equal Go settings share one build
// (aarch64_cortex-a53 and aarch64_generic are the same arm64 binary).
func (t target) key() string { return t.GOARCH + " " + strings.Join(t.Env, " ") }

func (t target) String() string {
	return strings.TrimSpace(t.Arch+" (GOARCH="+t.GOARCH+" "+strings.Join(t.Env, " ")) + ")"
}

// parseTargets reads the -arch list.
func parseTargets(list string) ([]target, error) {
	var ts []target
	seen := map[string]bool{}
	for _, word := range strings.Fields(list) {
		t, err := parseTarget(word)
		if err != nil {
			return nil, err
		}
		if seen[t.Arch] {
			continue
		}
		seen[t.Arch] = true
		ts = append(ts, t)
	}
	if len(ts) == 0 {
		return nil, errors.New("no architecture given (e.g. -arch 'mips_24kc x86_64')")
	}
	return ts, nil
}

// goArchs are the GOARCH values a Linux router can run; -arch NAME=GOARCH must name one.
var goArchs = []string{"386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le", "ppc64", "ppc64le", "riscv64", "s390x"}

// parseTarget reads one -arch word: an OpenWrt name, or NAME=GOARCH[,VAR=VALUE...].
func parseTarget(word string) (target, error) {
	name, goSpec, explicit := strings.Cut(word, "=")
	if !validArchName(name) {
		return target{}, fmt.Errorf("%q is not an OpenWrt architecture name ([a-z0-9_-], e.g. mips_24kc)", name)
	}
	if !explicit {
		return openwrtTarget(name)
	}
	parts := strings.Split(goSpec, ",")
	t := target{Arch: name, GOARCH: parts[0]}
	if !slices.Contains(goArchs, t.GOARCH) {
		return target{}, fmt.Errorf("%s: unknown GOARCH %q (one of %s)", name, t.GOARCH, strings.Join(goArchs, ", "))
	}
	for _, kv := range parts[1:] {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok || v == "":
			return target{}, fmt.Errorf("%s: %q is not VAR=VALUE", name, kv)
		case k == "GOARM" || k == "GOMIPS" || k == "GOMIPS64" || k == "GO386" || k == "GOAMD64" || k == "GOARM64" || k == "GORISCV64":
			t.Env = append(t.Env, kv)
		default:
			return target{}, fmt.Errorf("%s: %q: only GOARM, GOMIPS, GOMIPS64, GO386, GOAMD64, GOARM64 and GORISCV64 can be set", name, k)
		}
	}
	return t, nil
}

func validArchName(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' && r != '-'
	}) < 0
}

// openwrtTarget derives the Go settings from an OpenWrt architecture name the way OpenWrt's
// own Go packages do (lang/golang/golang-values.mk): the CPU family before the first '_' gives
// GOARCH; for arm, an FPU named after the CPU ("cortex-a7_neon-vfpv4", "cortex-a9_vfpv3-d16")
// gives GOARM=7 (6 for plain vfp/vfpv2) and no FPU gives GOARM=5, so arm_cortex-a9 (Broadcom
// Northstar has no VFP) gets 5; mips and mipsel always get GOMIPS=softfloat, which runs on
// every MIPS router (most have no FPU; the few with one only lose some speed, and a daemon
// that sends a probe every few seconds does no floating point worth the name).
func openwrtTarget(arch string) (target, error) {
	cpu, rest, _ := strings.Cut(arch, "_")
	t := target{Arch: arch}
	switch cpu {
	case "x86":
		if rest != "64" {
			return target{}, fmt.Errorf("%s: unknown x86 variant (x86_64 is known)", arch)
		}
		t.GOARCH = "amd64"
	case "aarch64":
		t.GOARCH = "arm64"
	case "arm":
		t.GOARCH = "arm"
		// rest is "cortex-a9", "cortex-a7_neon-vfpv4", "arm1176jzf-s_vfp", ...
		_, fpu, hasFPU := strings.Cut(rest, "_")
		switch {
		case !hasFPU:
			t.Env = []string{"GOARM=5"}
		case fpu == "vfp" || fpu == "vfpv2":
			t.Env = []string{"GOARM=6"}
		default:
			t.Env = []string{"GOARM=7"}
		}
	case "mips":
		t.GOARCH, t.Env = "mips", []string{"GOMIPS=softfloat"}
	case "mipsel":
		t.GOARCH, t.Env = "mipsle", []string{"GOMIPS=softfloat"}
	case "mips64":
		t.GOARCH, t.Env = "mips64", []string{"GOMIPS64=softfloat"}
	case "mips64el":
		t.GOARCH, t.Env = "mips64le", []string{"GOMIPS64=softfloat"}
	case "i386":
		// i386_pentium-mmx and the geode/legacy targets have no SSE2.
		t.GOARCH = "386"
		if strings.HasPrefix(rest, "pentium4") || strings.HasPrefix(rest, "core") {
			t.Env = []string{"GO386=sse2"}
		} else {
			t.Env = []string{"GO386=softfloat"}
		}
	case "riscv64":
		t.GOARCH = "riscv64"
	case "loongarch64":
		t.GOARCH = "loong64"
	case "powerpc64":
		t.GOARCH = "ppc64"
	default:
		return target{}, fmt.Errorf("%s: no known Go target; name it as %s=GOARCH[,GOARM=N|GOMIPS=softfloat]", arch, arch)
	}
	if t.GOARCH == "" || (cpu == "arm" && rest == "") {
		return target{}, fmt.Errorf("%s: incomplete architecture name", arch)
	}
	return t, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	switch {
	case o.feedKeys != "":
		return makeFeedKeys(o.feedKeys, stdout)
	case o.feed != "":
		return buildFeed(o, stdout)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	routerFiles, err := loadFiles(filepath.Join(o.root, "files"))
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mkpkg-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	bins, err := buildAll(o, tmp)
	if err != nil {
		return err
	}
	var failed []error
	for _, t := range o.archs {
		bin := bins[t.key()]
		s := newSpec(o, t, bin, routerFiles)
		fmt.Fprintf(stdout, "%s: %s %s\n", t, binaryPath, sizeString(int64(len(bin))))
		if t.Arch == budgetArch && len(bin) > budgetBinary {
			fmt.Fprintf(stderr, "mkpkg: warning: %s binary is %s, over the %s budget\n", t.Arch, sizeString(int64(len(bin))), sizeString(budgetBinary))
			if o.verify { // make test verifies: a binary over budget fails it
				failed = append(failed, fmt.Errorf("%s binary over the size budget", t.Arch))
			}
		}
		for _, f := range o.formats {
			var out string
			var err error
			switch f {
			case "ipk":
				out, err = writeIPK(s, o.out)
				if err == nil && o.verify {
					err = verifyIPK(out, s)
				}
			case "apk":
				out, err = writeAPK(s, o.out, o.key)
				if err == nil && o.verify {
					err = verifyAPK(out, s, o.key)
				}
			}
			if err != nil {
				failed = append(failed, fmt.Errorf("%s %s: %w", t.Arch, f, err))
				fmt.Fprintf(stderr, "mkpkg: %s %s: %v\n", t.Arch, f, err)
				continue
			}
			fi, err := os.Stat(out)
			if err != nil {
				return err
			}
			verified := ""
			if o.verify {
				verified = ", verified"
			}
			fmt.Fprintf(stdout, "  %s %s%s\n", out, sizeString(fi.Size()), verified)
			if t.Arch == budgetArch && fi.Size() > budgetPackage {
				fmt.Fprintf(stderr, "mkpkg: warning: %s is %s, over the %s budget\n", out, sizeString(fi.Size()), sizeString(budgetPackage))
				if o.verify {
					failed = append(failed, fmt.Errorf("%s over the size budget", out))
				}
			}
		}
	}
	return errors.Join(failed...)
}

// sizeString prints a size as users compare it with the budget: bytes and decimal megabytes.
func sizeString(n int64) string {
	return fmt.Sprintf("%d bytes (%.2f MB)", n, float64(n)/1e6)
}

// buildAll compiles one binary per distinct Go setting, up to o.parallel at once.
func buildAll(o *options, tmp string) (map[string][]byte, error) {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
		bins = map[string][]byte{}
		sem  = make(chan struct{}, o.parallel)
	)
	seen := map[string]bool{}
	for _, t := range o.archs {
		if seen[t.key()] {
			continue
		}
		seen[t.key()] = true
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			b, err := buildBinary(o, t, filepath.Join(tmp, t.Arch))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", t, err))
				return
			}
			bins[t.key()] = b
		})
	}
	wg.Wait()
	return bins, errors.Join(errs...)
}

// buildBinary runs go build for one target: static (CGO_ENABLED=0), stripped, -trimpath and
// without VCS stamps, so the bytes depend only on the source, the Go version and the flags.
func buildBinary(o *options, t target, dir string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "nextdns-failover")
	ldflags := "-s -w -X main.version=" + o.version + "-" + o.release
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-gcflags="+gcflags, "-ldflags="+ldflags, "-o", out, mainPackage)
	cmd.Dir = o.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+t.GOARCH,
		"GOARM=", "GOMIPS=", "GOMIPS64=", "GO386=") // clear the host's, then set ours
	cmd.Env = append(cmd.Env, t.Env...)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, msg)
	}
	return os.ReadFile(out)
}

// loadFiles reads the router files under dir (the repository's files/), with the modes they get
// on the router: scripts and programs 0755, everything else 0644. The config is 0644 like
// /etc/config/dhcp: it holds no secret (NextDNS endpoints are not credentials) and the daemon,
// running as an unprivileged user, must be able to read it.
func loadFiles(dir string) ([]pkgFile, error) {
	var files []pkgFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := "/" + filepath.ToSlash(rel)
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: %w: only regular files can be packaged", p, errBadPackage)
		}
		if strings.HasSuffix(name, "~") || strings.Contains(name, "/.") {
			return nil // editor backups, dot files
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, pkgFile{Path: name, Mode: fileMode(name), Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading router files: %w", err)
	}
	if !slices.ContainsFunc(files, func(f pkgFile) bool { return f.Path == configPath }) {
		return nil, fmt.Errorf("%s: %w: missing %s", dir, errBadPackage, configPath)
	}
	return files, nil
}

// fileMode is a router file's mode, from where it lives (not from the checkout's bits, which
// some file systems lose).
func fileMode(p string) fs.FileMode {
	for _, dir := range []string{"/etc/init.d/", "/etc/uci-defaults/", "/usr/sbin/", "/usr/bin/", "/usr/libexec/", "/etc/hotplug.d/"} {
		if strings.HasPrefix(p, dir) {
			return 0o755
		}
	}
	return 0o644
}

// newSpec assembles the package description for one target.
func newSpec(o *options, t target, bin []byte, routerFiles []pkgFile) *spec {
	files := append([]pkgFile{{Path: binaryPath, Mode: 0o755, Data: bin}}, routerFiles...)
	slices.SortFunc(files, func(a, b pkgFile) int { return strings.Compare(a.Path, b.Path) })
	return &spec{
		Name: pkgName, Version: o.version, Release: o.release, Arch: t.Arch,
		Description: pkgDescription, License: pkgLicense, URL: pkgURL,
		Maintainer: pkgMaintainer, Section: pkgSection,
		Depends:   slices.Clone(pkgDepends),
		Files:     files,
		Conffiles: []string{configPath},
		PostInst:  []byte(postInst),
		PreRm:     []byte(preRm),
		MTime:     o.mtime,
	}
}
