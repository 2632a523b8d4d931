#!/usr/bin/env bash
# Builds the container image $IMAGE:$VERSION (and $IMAGE:latest) the way ko and goreleaser do:
# the static binary is built here with the repository's Go toolchain, into a small build context
# (bin/image/) beside the few files of its root filesystem (deploy/image/rootfs, in Go: it runs
# wherever azd does), and the Containerfile is FROM scratch with ADD and COPY only: nothing is
# pulled from a registry, nothing runs inside the image.
#
#   VERSION  image tag and main.version (make passes git describe)
#   IMAGE    image name (default platform)
#   GOARCH   the image's architecture (default amd64, what Azure Container Apps runs)
#   CONTEXT_ONLY=1  prepare the build context (with a copy of the Containerfile) and stop: for a
#            builder elsewhere (azd's remote build in Azure Container Registry; azure.yaml)
#   CA_BUNDLE  the CA bundle the image trusts (default: the build machine's)
#   INSTALL=1, CONTAINER_ENGINE, PODMAN_FLAGS: see engine.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=${VERSION:-dev}
IMAGE=${IMAGE:-platform}
CONTEXT=bin/image

if ! [[ $VERSION =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  echo "image: VERSION $VERSION is not a valid image tag ([A-Za-z0-9_.-], at most 128)" >&2
  exit 2
fi

if [ "${CONTEXT_ONLY:-}" != 1 ]; then
  source deploy/image/engine.sh
fi

rm -rf "$CONTEXT"
mkdir -p "$CONTEXT"

# Static (no libc), reproducible paths, no symbol tables, time zones embedded (scratch has no
# /usr/share/zoneinfo).
CGO_ENABLED=0 GOOS=linux GOARCH=${GOARCH:-amd64} go build -trimpath -tags timetzdata \
  -ldflags "-s -w -X main.version=$VERSION" -o "$CONTEXT/platform" ./cmd/platform

# The root filesystem's other files (passwd, group, the CA bundle, /tmp, the working
# directory owned by nonroot), as a tar whose entries carry their owners and modes: see
# deploy/image/rootfs. CA_BUNDLE picks the bundle; default: the system's.
go run ./deploy/image/rootfs -o "$CONTEXT/rootfs.tar"

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
