# Sourced by build.sh and test.sh: picks the container engine into ENGINE (an array: the command
# and its global flags), or exits 1 with a one-line reason.
#
#   CONTAINER_ENGINE=podman|docker  use that one (it must work); unset: docker if its daemon
#                                   answers, else podman
#   INSTALL=1                       no working engine: install podman with apt-get first (root,
#                                   Debian/Ubuntu; what CI does on a fresh machine)
#
# The Containerfile has no RUN step, so building and exporting the image needs only image
# storage: no OCI runtime, cgroups or network. Where podman's default storage (overlay) does not
# work (inside a container, an old kernel), podman runs with --storage-driver vfs; both builds
# and tests use the same choice, so they see the same images. PODMAN_FLAGS overrides it.

engine_works() { "$@" info >/dev/null 2>&1; }

pick_podman() {
  command -v podman >/dev/null 2>&1 || return 1
  if [ -n "${PODMAN_FLAGS+set}" ]; then
    # shellcheck disable=SC2206 # flags are words
    ENGINE=(podman $PODMAN_FLAGS)
    engine_works "${ENGINE[@]}"
    return
  fi
  ENGINE=(podman)
  engine_works "${ENGINE[@]}" && return
  ENGINE=(podman --storage-driver vfs --cgroup-manager cgroupfs --events-backend file)
  engine_works "${ENGINE[@]}"
}

pick_docker() {
  command -v docker >/dev/null 2>&1 || return 1
  ENGINE=(docker)
  engine_works "${ENGINE[@]}"
}

pick_engine() {
  case "${CONTAINER_ENGINE:-}" in
  podman) pick_podman && return ;;
  docker) pick_docker && return ;;
  "") pick_docker && return; pick_podman && return ;;
  *) echo "image: CONTAINER_ENGINE=$CONTAINER_ENGINE: want podman or docker" >&2; exit 2 ;;
  esac
  return 1
}

install_podman() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "image: INSTALL=1 installs podman with apt-get as root; here: uid $(id -u), apt-get $(command -v apt-get || echo missing)" >&2
    exit 1
  fi
  echo "image: installing podman with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq podman ca-certificates >/dev/null
}

why_not() { # engine: why it does not work
  if ! command -v "$1" >/dev/null 2>&1; then echo "$1: not installed"
  elif [ "$1" = docker ]; then echo "docker: no daemon answers 'docker info'"
  else echo "podman: 'podman info' fails"; fi
}

if ! pick_engine; then
  if [ "${INSTALL:-}" = 1 ] && [ "${CONTAINER_ENGINE:-podman}" = podman ] && ! command -v podman >/dev/null 2>&1; then
    install_podman
    pick_podman || { echo "image: podman was installed but 'podman info' fails; run it to see why" >&2; exit 1; }
  else
    if [ -n "${CONTAINER_ENGINE:-}" ]; then reason=$(why_not "$CONTAINER_ENGINE"); else reason="$(why_not docker); $(why_not podman)"; fi
    echo "image: no working container engine ($reason); install podman: apt-get install podman (or, as root: make image INSTALL=1)" >&2
    exit 1
  fi
fi
