# flowIQ Gateway add-on image, one per architecture (amd64, aarch64). Two
# builders read this file: the Supervisor, on the user's device, while
# config.yaml names no prebuilt image; and .github/workflows/release.yaml,
# which publishes the images. This file uses nothing the plain Docker
# builder lacks (no "syntax" directive, no RUN --mount or heredocs, no
# TARGETARCH), so it builds whichever builder the Supervisor runs. The
# architecture comes from BUILD_ARCH, a build argument both pass.
#
# scripts/build-addon-binary.sh runs the same `go build` line against
# Debian's librtlsdr-dev so CI proves this step without a container engine
# (a test keeps the two lines identical).

ARG GO_IMAGE=golang:1.26.8-bookworm
ARG BASE_IMAGE=ghcr.io/home-assistant/base-debian:bookworm-2026.06.0

# ---- build: librtlsdr from source, then the gateway with cgo ----
FROM ${GO_IMAGE} AS build

# librtlsdr is built here rather than taken from Debian for two reasons:
# - DETACH_KERNEL_DRIVER=ON, stated rather than assumed: Home Assistant OS
#   binds the DVB-T driver to the dongle and users cannot blacklist it, so
#   the library must detach it. (Debian bookworm's 0.6.0-4 happens to be
#   built with it too; the test build uses that one.)
# - 2.0.x supports the RTL-SDR Blog V4 (R828D), which 0.6.0 does not.
# The release tarball is pinned by checksum.
ARG RTLSDR_VERSION=2.0.2
ARG RTLSDR_SHA256=d69943eb32df742bc38a00ce6615e41250fd57851174e5ff916ec31e9e9e68e9
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake libusb-1.0-0-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
RUN curl -fsSL -o /tmp/rtl-sdr.tar.gz \
        "https://github.com/osmocom/rtl-sdr/archive/refs/tags/v${RTLSDR_VERSION}.tar.gz" \
    && echo "${RTLSDR_SHA256}  /tmp/rtl-sdr.tar.gz" | sha256sum -c - \
    && mkdir /src/rtl-sdr -p \
    && tar -xzf /tmp/rtl-sdr.tar.gz -C /src/rtl-sdr --strip-components=1 \
    && cmake -S /src/rtl-sdr -B /src/rtl-sdr/build \
        -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_INSTALL_PREFIX=/usr/local \
        -DCMAKE_INSTALL_LIBDIR=lib \
        -DDETACH_KERNEL_DRIVER=ON \
        -DINSTALL_UDEV_RULES=OFF \
    && cmake --build /src/rtl-sdr/build --parallel "$(nproc)" \
    && cmake --install /src/rtl-sdr/build \
    && ldconfig

WORKDIR /src/flowiq-gateway
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -tags rtlsdr -trimpath -ldflags "-s -w" -o /out/flowiq-gateway ./cmd/flowiq-gateway

# ---- runtime: Home Assistant's Debian base, libusb and librtlsdr only ----
FROM ${BASE_IMAGE}
ARG BUILD_VERSION=0.2.0
# Home Assistant's architecture name (amd64, aarch64); the Supervisor sets it.
ARG BUILD_ARCH=amd64

RUN apt-get update \
    && apt-get install -y --no-install-recommends libusb-1.0-0 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/lib/librtlsdr.so* /usr/local/lib/
RUN ldconfig
COPY --from=build /out/flowiq-gateway /usr/bin/flowiq-gateway

LABEL \
    io.hass.name="flowIQ Gateway" \
    io.hass.description="Kamstrup flowIQ and MULTICAL 21 water meters over wireless M-Bus with an RTL-SDR dongle" \
    io.hass.type="addon" \
    io.hass.version="${BUILD_VERSION}" \
    io.hass.arch="${BUILD_ARCH}" \
    org.opencontainers.image.title="flowIQ Gateway" \
    org.opencontainers.image.source="https://github.com/flowiq-gateway/flowiq-gateway" \
    org.opencontainers.image.version="${BUILD_VERSION}"

# The Supervisor restarts an add-on whose container turns unhealthy (with
# the add-on's Watchdog on). The gateway reopens a stalled dongle itself;
# `health` fails only when reopening keeps failing, the broker has been
# away for minutes, or the gateway stopped updating its health file.
ENV FLOWIQ_HEALTH_FILE=/tmp/flowiq-gateway-health.json
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/usr/bin/flowiq-gateway", "health"]

# The gateway is PID 1 in place of the base image's s6 /init (config.yaml
# has init: false): it starts no child processes, handles SIGTERM itself and
# must see SUPERVISOR_TOKEN in its environment as the container got it.
ENTRYPOINT ["/usr/bin/flowiq-gateway"]
CMD ["addon"]
