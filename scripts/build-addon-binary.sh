#!/usr/bin/env bash
# Builds the add-on's binary the way the Dockerfile's build stage does: cgo,
# the rtlsdr build tag, the same flags (addon/manifest_test.go keeps the two
# go build lines identical). It links against the system's librtlsdr
# (Debian: librtlsdr-dev) instead of the image's own build of it, so CI
# proves the image's build step where no container engine runs (make
# build-tags, part of make test). It then checks that the binary links
# librtlsdr exactly when the command uses the USB driver.
#
# usage: scripts/build-addon-binary.sh OUTPUT
set -euo pipefail

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUTPUT" >&2
    exit 2
fi
out=$(realpath -m -- "$1")
cd "$(dirname -- "$0")/.."

cc=${CC:-cc}
if ! printf '#include <rtl-sdr.h>\n' | "$cc" -E -x c - >/dev/null 2>&1; then
    echo "$0: the librtlsdr headers are missing; install them with: apt-get install librtlsdr-dev" >&2
    exit 1
fi

mkdir -p -- "$(dirname -- "$out")"
CGO_ENABLED=1 go build -tags rtlsdr -trimpath -ldflags "-s -w" -o "$out" ./cmd/flowiq-gateway

# The USB driver (gortlsdr) needs librtlsdr at run time; the image ships it.
deps=$(CGO_ENABLED=1 go list -deps -tags rtlsdr ./cmd/flowiq-gateway)
dynamic=$(readelf -d -- "$out")
uses_driver=no
linked=no
case $'\n'"$deps"$'\n' in *$'\n'github.com/jpoirier/gortlsdr$'\n'*) uses_driver=yes ;; esac
case $dynamic in *'Shared library: [librtlsdr.so'*) linked=yes ;; esac
if [ "$uses_driver" != "$linked" ]; then
    echo "$0: gortlsdr in the build: $uses_driver, librtlsdr linked: $linked" >&2
    grep NEEDED <<<"$dynamic" >&2 || true
    exit 1
fi
if [ "$uses_driver" = no ]; then
    echo "note: the command does not use the USB driver yet: the binary is pure Go"
fi
echo "built $out (librtlsdr linked: $linked)"
