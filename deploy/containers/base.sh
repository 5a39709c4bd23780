#!/bin/sh
# The image base when no registry can be pulled: a Debian bookworm root filesystem made by
# mmdebstrap from the Debian mirror and imported into podman's local storage. The Dockerfile's
# stages run on it as they do on python:3.11-slim-bookworm (python, venv, groupadd/useradd).
#
#   deploy/containers/base.sh [IMAGE]    (default localhost/deja-base:bookworm)
#
# Cached: the image carries a label with the hash of this script; it is rebuilt only when the
# script (its package list, mirror, options) changes or the image is missing. FORCE=1 rebuilds.
set -eu
IMAGE=${1:-localhost/deja-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# python-is-python3: `python` on PATH, as in the official image. python3-venv: venv with pip.
# Everything the wheels need beyond that (libstdc++, zlib) is already in minbase.
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates

inputs=$(cat "$0" | sha256sum | cut -c1-16)
current=$(podman image inspect --format '{{ index .Labels "deja.base.inputs" }}' "$IMAGE" 2>/dev/null || true)
if [ "$current" = "$inputs" ] && [ -z "${FORCE:-}" ]; then
    echo "base.sh: $IMAGE is up to date ($inputs)"
    exit 0
fi

start=$(date +%s)
# Lean: no Recommends, no docs/man pages/locales, apt lists removed (mmdebstrap's default cleanup).
mmdebstrap --variant=minbase --include="$PACKAGES" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/log/apt/* "$1"/var/log/dpkg.log' \
    --format=tar bookworm - \
    "deb $MIRROR bookworm main" \
    "deb $MIRROR bookworm-updates main" \
    "deb $SECURITY_MIRROR bookworm-security main" </dev/null |
    podman import \
        --change 'CMD ["/bin/bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
        --change "LABEL deja.base.inputs=$inputs" \
        - "$IMAGE" >/dev/null
echo "base.sh: built $IMAGE ($inputs) in $(($(date +%s) - start))s"
