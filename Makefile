# flowiq-gateway — build, demo and test entry points.
#   make demo   decode the bundled recording end to end and print readings
#   make test   everything CI runs: deps, format, vet, staticcheck, race tests, tagged builds

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOBIN       := $(shell $(GO) env GOPATH)/bin
DEMO_IQ     := testdata/flowiq2101_74493770_868.95M_1M6.cu8
DEMO_METERS := testdata/demo-meters.toml
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build demo test deps fmt vet staticcheck unit build-tags fuzz bench screenshots clean

all: build

build:
	$(GO) build -o flowiq-gateway ./cmd/flowiq-gateway

# The main job on a bundled default: IQ recording → demodulator → decrypt → readings.
demo:
	@chmod 600 $(DEMO_METERS) # git does not keep it; a key file should be private
	$(GO) run ./cmd/flowiq-gateway run --input $(DEMO_IQ) --meters $(DEMO_METERS)

# The whole test suite. deps installs with apt what the tests need and
# the machine lacks: Mosquitto and mosquitto_passwd (MQTT integration
# tests), python3-jinja2 (Home Assistant's template engine), librtlsdr-dev
# and pkg-config (the rtlsdr-tagged build), binutils (readelf, checking the
# add-on binary's links), apparmor (apparmor_parser compiles the add-on's
# AppArmor profile). The tests fail, never skip, when one is missing.
test: deps fmt vet staticcheck unit build-tags

deps:
	@missing=""; \
	{ command -v mosquitto || [ -x /usr/sbin/mosquitto ]; } >/dev/null 2>&1 || missing="$$missing mosquitto"; \
	{ command -v mosquitto_passwd || [ -x /usr/bin/mosquitto_passwd ]; } >/dev/null 2>&1 || missing="$$missing mosquitto"; \
	python3 -c 'import jinja2' >/dev/null 2>&1 || missing="$$missing python3-jinja2"; \
	[ -f /usr/include/rtl-sdr.h ] || missing="$$missing librtlsdr-dev"; \
	command -v dbus-daemon >/dev/null 2>&1 || missing="$$missing dbus-daemon"; \
	command -v pkg-config >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	command -v readelf >/dev/null 2>&1 || missing="$$missing binutils"; \
	{ command -v apparmor_parser || [ -x /usr/sbin/apparmor_parser ]; } >/dev/null 2>&1 || missing="$$missing apparmor"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	missing=$$(printf '%s\n' $$missing | sort -u | tr '\n' ' '); \
	if [ -n "$${missing% }" ]; then \
		echo "installing: $$missing"; \
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

# The default build is pure Go; the USB build needs cgo and librtlsdr. The
# add-on binary is built exactly as the add-on's Dockerfile builds it (the
# unit tests keep the two go build lines identical), and its librtlsdr link
# is checked.
build-tags:
	CGO_ENABLED=0 $(GO) build -o /dev/null ./...
	CGO_ENABLED=1 $(GO) build -tags rtlsdr -o /dev/null ./...
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	bash scripts/build-addon-binary.sh "$$dir/flowiq-gateway"

# Each fuzz target for FUZZTIME (default 60s).
FUZZTIME ?= 60s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# The status page's screenshots in docs/, taken by its browser test.
screenshots: deps
	$(GO) test -count=1 -run TestStatusPageInChromium ./web -docs-screenshots

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -f flowiq-gateway
