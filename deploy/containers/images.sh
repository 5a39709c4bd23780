#!/bin/sh
# `make images`: every image the cluster runs, built daemonless with podman (buildah inside):
#   localhost/deja:dev           deploy/docker/Dockerfile: gateway, store, embedder, semantic index,
#                                verifier and the mock provider (`python -m services serve <service>`)
#   localhost/deja-valkey:dev    deploy/containers/Containerfile.valkey: the store's Valkey
# on BASE_IMAGE, by default the mmdebstrap bookworm base (deploy/containers/base.sh) because no
# registry image can be pulled here; BASE_IMAGE=python:3.11-slim-bookworm builds on the official one.
# Run from the repository root after `make models`. Layers are cached: a rebuild redoes only what changed.
set -eu
DEJA_IMAGE=${DEJA_IMAGE:-localhost/deja:dev}
VALKEY_IMAGE=${VALKEY_IMAGE:-localhost/deja-valkey:dev}
BASE_IMAGE=${BASE_IMAGE:-localhost/deja-base:bookworm}
here=$(dirname "$0")

case "$BASE_IMAGE" in
localhost/*) sh "$here/base.sh" "$BASE_IMAGE" ;;
esac

# pip inside the build uses the host's index and CA bundle: behind a mirror or a TLS-intercepting
# proxy the image's own certifi bundle would fail. A local file:// index means nothing in a build.
index=${PIP_INDEX_URL:-$(python3 -m pip config get global.index-url 2>/dev/null || true)}
cert=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}
[ -n "$cert" ] || cert=/etc/ssl/certs/ca-certificates.crt
set -- --build-arg "BASE_IMAGE=$BASE_IMAGE"
case "$index" in
http://* | https://*) set -- "$@" --build-arg "PIP_INDEX_URL=$index" ;;
esac
if [ -f "$cert" ]; then
    set -- "$@" --volume "$cert:/run/deja-build/ca.crt:ro" --build-arg PIP_CERT=/run/deja-build/ca.crt
fi

build() {  # tag containerfile context
    start=$(date +%s)
    podman build --pull=missing --layers "$@"
    echo "images.sh: built $TAG in $(($(date +%s) - start))s"
}
TAG=$DEJA_IMAGE build "$@" -f deploy/docker/Dockerfile -t "$DEJA_IMAGE" .
TAG=$VALKEY_IMAGE build "$@" -f "$here/Containerfile.valkey" -t "$VALKEY_IMAGE" "$here"
podman images --filter reference="$DEJA_IMAGE" --filter reference="$VALKEY_IMAGE" \
    --filter reference="$BASE_IMAGE" --format '{{.Repository}}:{{.Tag}}  {{.Size}}'
