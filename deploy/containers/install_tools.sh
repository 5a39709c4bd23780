#!/bin/sh
# Installs the daemonless container tools `make images` / `make e2e-containers` use, from the
# Debian archive (no Docker daemon, no registry): podman runs the containers, buildah builds the
# images, mmdebstrap makes the base root filesystem when no registry base can be pulled.
# runc: the runtime containers.conf selects (crun 1.8 fails on hybrid cgroup hosts); iptables:
# netavark's networks and published ports need it. Idempotent: does nothing when all are on PATH.
# Needs root (apt-get) when something is missing.
set -eu
missing=""
for tool in podman buildah mmdebstrap runc iptables; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "install_tools.sh: missing:$missing; run as root or install them with your package manager" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# uidmap/slirp4netns/fuse-overlayfs: rootless podman; netavark+aardvark-dns: networks with DNS names.
apt-get install -y -qq --no-install-recommends podman buildah mmdebstrap runc iptables \
    netavark aardvark-dns uidmap slirp4netns fuse-overlayfs conmon catatonit >/dev/null
podman --version
buildah --version
mmdebstrap --version
