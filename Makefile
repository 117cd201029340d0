# nextdns-failover: build, test, package, demo.
# `make demo` and `make test` are the two commands a newcomer runs (see README.md).

GO        ?= go
VERSION   ?= 0.1.0
RELEASE   ?= 1
# Reproducible builds take their timestamps from the last commit.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
export SOURCE_DATE_EPOCH

ARCHS     ?= mips_24kc mipsel_24kc arm_cortex-a7_neon-vfpv4 arm_cortex-a9 aarch64_cortex-a53 aarch64_generic x86_64
ARCH      ?=
# -gcflags=all=-l: no inlining, the packages' build too (cmd/mkpkg says why)
GOFLAGS_BUILD = -trimpath -gcflags=all=-l -ldflags='-s -w -X main.version=$(VERSION)-$(RELEASE)'

.PHONY: all build deps demo test unit lint shell-test ipk apk packages qemu-smoke lab-smoke bench fuzz footprint clean feed feed-keys

all: build

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o bin/nextdns-failover ./cmd/nextdns-failover

# deps installs the system tools the tests and the demo drive (dnsmasq, qemu-user, shellcheck)
# when they are missing. Root on CI; elsewhere it asks for sudo.
deps:
	@sh scripts/deps.sh

demo: deps build
	$(GO) run ./cmd/failover-lab -demo -bin bin/nextdns-failover

# bench: every strategy in every scenario, each fault at 5 phases against the probe rounds, musl and
# glibc clients; about 12 minutes (the 10% loss lasts ten). The daemon rows of results/baseline.json
# show as "before". A quick trial of every scenario:
#   make bench BENCHFLAGS='-phases 1 -warmup 10s -fault 20s -loss 30s -idle 15s' BENCHOUT=/tmp/trial
BENCHOUT ?= results
bench: deps build
	$(GO) run ./cmd/failover-lab -bench -bin bin/nextdns-failover -out $(BENCHOUT) $(if $(wildcard results/baseline.json),-baseline results/baseline.json) $(BENCHFLAGS)

test: deps lint unit shell-test packages qemu-smoke lab-smoke
	@echo "make test: all checks passed"

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	shellcheck -x -s sh $$(sh scripts/shell-files.sh)

unit:
	CGO_ENABLED=0 $(GO) test -count=1 ./...

shell-test:
	sh scripts/test-shell.sh

ipk:
	CGO_ENABLED=0 $(GO) run ./cmd/mkpkg -format ipk -version $(VERSION) -release $(RELEASE) -out dist $(if $(ARCH),-arch $(ARCH),-arch '$(ARCHS)')

apk:
	CGO_ENABLED=0 $(GO) run ./cmd/mkpkg -format apk -version $(VERSION) -release $(RELEASE) -out dist $(if $(ARCH),-arch $(ARCH),-arch '$(ARCHS)') $(if $(APK_KEY),-key $(APK_KEY))

packages:
	CGO_ENABLED=0 $(GO) run ./cmd/mkpkg -format ipk,apk -version $(VERSION) -release $(RELEASE) -out dist $(if $(ARCH),-arch $(ARCH),-arch '$(ARCHS)') -verify

# feed: a package feed per architecture in dist/feed/<arch>/, for opkg (Packages, Packages.gz,
# Packages.sig) and apk (packages.adb), signed with the keys `make feed-keys` made:
#   make feed USIGN_KEY=<dir>/nextdns-failover-feed.usign.sec APK_KEY=<dir>/nextdns-failover-feed.apk-private.pem
# Without them the indexes are unsigned. ARCH=x86_64 limits it to one architecture.
feed: packages
	CGO_ENABLED=0 $(GO) run ./cmd/mkpkg -feed dist/feed -format ipk,apk -version $(VERSION) -release $(RELEASE) -out dist $(if $(ARCH),-arch $(ARCH),-arch '$(ARCHS)') $(if $(USIGN_KEY),-usign-key $(USIGN_KEY)) $(if $(APK_KEY),-index-key $(APK_KEY))

# feed-keys: new usign and apk signing keys for the feed, outside the checkout (never overwritten).
FEED_KEYS ?= $(HOME)/.config/nextdns-failover/feed-keys
feed-keys:
	$(GO) run ./cmd/mkpkg -feed-keys $(FEED_KEYS)

qemu-smoke: packages
	sh scripts/qemu-smoke.sh dist

lab-smoke: build
	$(GO) run ./cmd/failover-lab -smoke -bin bin/nextdns-failover

fuzz:
	sh scripts/fuzz.sh $(FUZZTIME)

# footprint: RSS and CPU of the real daemon after a minute of probing with the default timings.
footprint: deps
	sh scripts/footprint.sh $(FOOTPRINT_SECONDS)

clean:
	rm -rf bin dist
