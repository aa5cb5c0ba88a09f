# flowiq-gateway — build, demo and test entry points.
#   make demo   decode the bundled recording end to end and print readings
#   make test   everything CI runs: deps, format, vet, staticcheck, race tests, tagged builds

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOBIN       := $(shell $(GO) env GOPATH)/bin
DEMO_IQ     := testdata/flowiq2101_74493770_868.95M_1M6.cu8
DEMO_METERS := testdata/demo-meters.toml
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build demo test deps fmt vet staticcheck unit build-tags fuzz bench clean

all: build

build:
	$(GO) build -o flowiq-gateway ./cmd/flowiq-gateway

# The main job on a bundled default: IQ recording → demodulator → decrypt → readings.
demo:
	@chmod 600 $(DEMO_METERS) # git does not keep it; a key file should be private
	$(GO) run ./cmd/flowiq-gateway run --input $(DEMO_IQ) --meters $(DEMO_METERS)

# The whole test suite. Installs Mosquitto (MQTT integration tests) and
# librtlsdr-dev (the rtlsdr-tagged build) with apt when they are missing.
test: deps fmt vet staticcheck unit build-tags

deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	[ -f /usr/include/rtl-sdr.h ] || missing="$$missing librtlsdr-dev"; \
	command -v dbus-daemon >/dev/null 2>&1 || missing="$$missing dbus-daemon"; \
	command -v pkg-config >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@[ -x $(GOBIN)/staticcheck ] && $(GOBIN)/staticcheck -version | grep -q '0.8.2' || $(GO) install $(STATICCHECK)

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) vet -tags rtlsdr ./...

staticcheck:
	$(GOBIN)/staticcheck ./...
	CGO_ENABLED=1 $(GOBIN)/staticcheck -tags rtlsdr ./...

unit:
	$(GO) test -race -count=1 ./...

# The default build is pure Go; the USB build needs cgo and librtlsdr, exactly
# as the add-on's Dockerfile builds it.
build-tags:
	CGO_ENABLED=0 $(GO) build -o /dev/null ./...
	CGO_ENABLED=1 $(GO) build -tags rtlsdr -o /dev/null ./...
	@if [ -x scripts/build-addon-binary.sh ]; then scripts/build-addon-binary.sh "$$(mktemp -d)/flowiq-gateway"; fi

# Each fuzz target for FUZZTIME (default 60s).
FUZZTIME ?= 60s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -f flowiq-gateway
