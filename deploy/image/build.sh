#!/usr/bin/env bash
# Builds the container image $IMAGE:$VERSION (and $IMAGE:latest) the way ko and goreleaser do:
# the static binary is built here with the repository's Go toolchain, into a small build context
# (bin/image/) beside the few files of its root filesystem, and the Containerfile is FROM scratch
# with COPY lines only: nothing is pulled from a registry, nothing runs inside the image.
#
#   VERSION  image tag and main.version (make passes git describe)
#   IMAGE    image name (default platform)
#   GOARCH   the image's architecture (default amd64, what Azure Container Apps runs)
#   CONTEXT_ONLY=1  prepare the build context (with a copy of the Containerfile) and stop: for a
#            builder elsewhere (azd's remote build in Azure Container Registry; azure.yaml)
#   INSTALL=1, CONTAINER_ENGINE, PODMAN_FLAGS: see engine.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=${VERSION:-dev}
IMAGE=${IMAGE:-platform}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
CONTEXT=bin/image

if ! [[ $VERSION =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  echo "image: VERSION $VERSION is not a valid image tag ([A-Za-z0-9_.-], at most 128)" >&2
  exit 2
fi

if [ "${CONTEXT_ONLY:-}" != 1 ]; then
  source deploy/image/engine.sh
fi

if [ ! -s "$CA_BUNDLE" ]; then
  echo "image: $CA_BUNDLE is missing; install it: apt-get install ca-certificates" >&2
  exit 1
fi

rm -rf "$CONTEXT"
mkdir -p "$CONTEXT"

# Static (no libc), reproducible paths, no symbol tables, time zones embedded (scratch has no
# /usr/share/zoneinfo).
CGO_ENABLED=0 GOOS=linux GOARCH=${GOARCH:-amd64} go build -trimpath -tags timetzdata \
  -ldflags "-s -w -X main.version=$VERSION" -o "$CONTEXT/platform" ./cmd/platform

# The root filesystem's other files, as a tar whose entries carry their owner and mode (ADD
# keeps them; COPY would not, nor could a builder that is not root chown them here): root's
# /etc/passwd and /etc/group (root, nonroot 65532), the CA bundle, /tmp (1777) and the working
# directory /var/lib/platform, owned by nonroot.
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$rootfs/var/lib/platform"
chmod 0755 "$rootfs" "$rootfs/etc" "$rootfs/etc/ssl" "$rootfs/etc/ssl/certs" "$rootfs/var" "$rootfs/var/lib" "$rootfs/var/lib/platform"
chmod 1777 "$rootfs/tmp"
install -m 0644 deploy/image/passwd "$rootfs/etc/passwd"
install -m 0644 deploy/image/group "$rootfs/etc/group"
install -m 0644 "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
tarflags=(--numeric-owner --sort=name --mtime=@"${SOURCE_DATE_EPOCH:-0}" -C "$rootfs")
tar -cf "$CONTEXT/rootfs.tar" "${tarflags[@]}" --owner=0 --group=0 --exclude=./var/lib/platform .
tar -rf "$CONTEXT/rootfs.tar" "${tarflags[@]}" --owner=65532 --group=65532 ./var/lib/platform

cp Containerfile "$CONTEXT/Containerfile"
if [ "${CONTEXT_ONLY:-}" = 1 ]; then
  echo "image: build context ready in $CONTEXT (Containerfile, platform, rootfs.tar)"
  exit 0
fi

"${ENGINE[@]}" build --quiet -f "$CONTEXT/Containerfile" \
  --build-arg "VERSION=$VERSION" \
  -t "$IMAGE:$VERSION" -t "$IMAGE:latest" "$CONTEXT" >/dev/null

size=$("${ENGINE[@]}" image inspect --format '{{.Size}}' "$IMAGE:$VERSION")
echo "image: built $IMAGE:$VERSION and $IMAGE:latest with ${ENGINE[0]} ($(numfmt --to=iec "$size")B)"
