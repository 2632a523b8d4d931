#!/usr/bin/env bash
# Proves that the image make image built holds a worker that starts, since running containers is
# not possible everywhere the image is built: it exports the image's filesystem and runs
# /platform from it, confined to that root (chroot, or unshare --root with the image's working
# directory) as the image's user, with the image's environment, against Azurite on
# 127.0.0.1:10000-10002 (make azurite/up) under a fresh namespace:
#   - the image config: User, WorkingDir, Entrypoint, Cmd, Env, ExposedPorts, version label;
#   - the files: /platform, the CA bundle, passwd and group with nonroot 65532, /tmp 1777, the
#     working directory owned by 65532;
#   - /platform version prints $VERSION;
#   - an event published with the host's bin/platform is drained by the image's worker --drain
#     (exit 0), and its history row is there, and the default settings database was created in
#     the working directory;
#   - the worker answers GET /readyz and /healthz with 200, logs JSON, and exits 0 within 25 s of
#     SIGTERM.
# Any check failing is exit 1 with a one-line reason. Needs root (chroot, and the exported files'
# owners). Prints the image size at the end.
#
#   VERSION, IMAGE, CONTAINER_ENGINE, PODMAN_FLAGS: as for build.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=${VERSION:-dev}
IMAGE=${IMAGE:-platform}
REF="$IMAGE:$VERSION"
ENTITY_GUID=7c9e6679-7425-40de-944b-e07fc1f90ae7

fail() { echo "image/test: $*" >&2; exit 1; }
ok() { echo "image/test: ok: $*"; }

[ "$(id -u)" = 0 ] || fail "needs root (chroot, and the exported files' owners 0 and 65532)"
[ -x bin/platform ] || fail "bin/platform is missing: run make build"
# The host's bin/platform talks to the Azurite the image's worker talks to, whatever the
# caller's shell says about storage.
unset PLATFORM_STORAGE_ACCOUNT PLATFORM_STORAGE_BLOB_ENDPOINT PLATFORM_STORAGE_QUEUE_ENDPOINT \
  PLATFORM_STORAGE_TABLE_ENDPOINT PLATFORM_STORAGE_CREDENTIAL PLATFORM_STORAGE_CONNECTION_STRING
curl -s -o /dev/null --max-time 2 http://127.0.0.1:10001/ || fail "Azurite does not answer on 127.0.0.1:10001: run make azurite/up"

source deploy/image/engine.sh
"${ENGINE[@]}" image inspect "$REF" >/dev/null 2>&1 ||
  fail "no image $REF: run make image"

rootfs=$(mktemp -d /tmp/platform-image-test.XXXXXX)
chmod 0755 "$rootfs" # mktemp made it 0700; the image's root is 0755 and the export does not say so
cid=""
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  if [ -n "$cid" ]; then "${ENGINE[@]}" rm -f "$cid" >/dev/null 2>&1 || true; fi
  rm -rf "$rootfs"
}
trap cleanup EXIT

# --- the image config -------------------------------------------------------------------------
inspect() { "${ENGINE[@]}" image inspect --format "$1" "$REF"; }
expect() { # what, got, want
  [ "$2" = "$3" ] || fail "$1 is $2, want $3"
}
user=$(inspect '{{.Config.User}}')
workdir=$(inspect '{{.Config.WorkingDir}}')
expect User "$user" 65532:65532
expect WorkingDir "$workdir" /var/lib/platform
expect Entrypoint "$(inspect '{{json .Config.Entrypoint}}')" '["/platform"]'
expect Cmd "$(inspect '{{json .Config.Cmd}}')" '["worker"]'
expect ExposedPorts "$(inspect '{{json .Config.ExposedPorts}}')" '{"8080/tcp":{}}'
expect 'label org.opencontainers.image.version' "$(inspect '{{index .Config.Labels "org.opencontainers.image.version"}}')" "$VERSION"
[ -n "$(inspect '{{index .Config.Labels "org.opencontainers.image.source"}}')" ] || fail "label org.opencontainers.image.source is missing"
mapfile -t image_env < <(inspect '{{range .Config.Env}}{{println .}}{{end}}' | sed '/^$/d')
for want in PLATFORM_HTTP_ADDR=0.0.0.0:8080 PLATFORM_LOG_FORMAT=json; do
  printf '%s\n' "${image_env[@]}" | grep -qxF "$want" || fail "Env lacks $want (has: ${image_env[*]})"
done
ok "config: User $user, WorkingDir $workdir, Entrypoint /platform, Cmd worker, Env ${image_env[*]}, port 8080/tcp, version label $VERSION"

# --- the files --------------------------------------------------------------------------------
cid=$("${ENGINE[@]}" create "$REF")
"${ENGINE[@]}" export "$cid" | tar -x -C "$rootfs" || fail "cannot export the filesystem of $REF"
[ -f "$rootfs/platform" ] && [ -x "$rootfs/platform" ] || fail "/platform is not an executable file"
[ -s "$rootfs/etc/ssl/certs/ca-certificates.crt" ] || fail "/etc/ssl/certs/ca-certificates.crt is missing or empty"
grep -q 'BEGIN CERTIFICATE' "$rootfs/etc/ssl/certs/ca-certificates.crt" || fail "/etc/ssl/certs/ca-certificates.crt holds no certificate"
grep -qx 'nonroot:x:65532:65532:[^:]*:[^:]*:[^:]*' "$rootfs/etc/passwd" || fail "/etc/passwd has no nonroot with uid and gid 65532"
grep -qx 'nonroot:x:65532:' "$rootfs/etc/group" || fail "/etc/group has no nonroot with gid 65532"
expect '/tmp mode' "$(stat -c %a "$rootfs/tmp")" 1777
expect "$workdir owner" "$(stat -c %u:%g "$rootfs$workdir")" 65532:65532
expect '/ owner' "$(stat -c %u:%g "$rootfs")" 0:0
ok "files: /platform, CA bundle ($(grep -c 'BEGIN CERTIFICATE' "$rootfs/etc/ssl/certs/ca-certificates.crt") certificates), nonroot 65532 in passwd and group, /tmp 1777, $workdir owned by 65532"

# --- /platform version, as the image's user -----------------------------------------------------
got=$(env -i "${image_env[@]}" "$(command -v chroot)" --userspec="$user" "$rootfs" /platform version 2>&1) || fail "/platform version failed: $got"
[[ $got == "platform $VERSION "* ]] || fail "/platform version printed '$got', want 'platform $VERSION ...'"
ok "chroot --userspec=$user: $got"

# in_image VAR=VALUE...: sets RUN to the command that runs /platform in the exported root as the
# image's user, in its working directory (chroot would start in /), with only the image's
# environment and the variables given; append the arguments.
uid=${user%%:*} gid=${user##*:}
unshare=$(command -v unshare)
in_image() {
  RUN=(env -i "${image_env[@]}" "$@" "$unshare" --root="$rootfs" --wd="$workdir"
    --setuid "$uid" --setgid "$gid" /platform)
}

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  fail "no free port found"
}

ns=imgt$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
test_env=(PLATFORM_NAMESPACE="$ns" PLATFORM_AUTH=keys)

# --- worker --drain: publish with the host's binary, process with the image's ---------------------
PLATFORM_NAMESPACE=$ns bin/platform publish examples/attendee-created.json >/dev/null ||
  fail "bin/platform publish examples/attendee-created.json failed (namespace $ns)"
drain_log="$rootfs.drain.log" run_log="$rootfs.run.log"
trap 'cleanup; rm -f "$drain_log" "$run_log"' EXIT
in_image "${test_env[@]}" PLATFORM_HTTP_ADDR="127.0.0.1:$(free_port)"
timeout 120 "${RUN[@]}" worker --drain >"$drain_log" 2>&1 ||
  fail "the image's worker --drain did not exit 0 within 120 s (namespace $ns); its log ends: $(tail -3 "$drain_log" | tr '\n' ' ')"
grep -q '"msg":"drained' "$drain_log" || fail "the image's worker --drain exited 0 without logging that it drained: $(tail -3 "$drain_log" | tr '\n' ' ')"
history=$(bin/platform history --entity-type 1 --entity-guid "$ENTITY_GUID" --namespace "$ns" --json) ||
  fail "bin/platform history failed (namespace $ns)"
rows=$(grep -o '"historyEventKey"' <<<"$history" | wc -l)
[ "$rows" = 1 ] || fail "history of entity 1/$ENTITY_GUID has $rows rows after the drain, want 1 (namespace $ns)"
[ -s "$rootfs$workdir/data/platform.db" ] || fail "the worker did not create the default settings database $workdir/data/platform.db"
ok "worker --drain exit 0 as $user (namespace $ns): 1 history row for entity 1/$ENTITY_GUID; $workdir/data/platform.db created"

# --- worker: ready, healthy, JSON logs, SIGTERM → exit 0 within 25 s ------------------------------
port=$(free_port)
in_image "${test_env[@]}" PLATFORM_HTTP_ADDR="127.0.0.1:$port"
"${RUN[@]}" worker >"$run_log" 2>&1 &
pid=$!
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port$1" || true; }
ready=""
for _ in $(seq 1 120); do
  kill -0 "$pid" 2>/dev/null || fail "the image's worker exited before it was ready; its log ends: $(tail -3 "$run_log" | tr '\n' ' ')"
  [ "$(status /readyz)" = 200 ] && { ready=1; break; }
  sleep 0.5
done
[ -n "$ready" ] || fail "GET /readyz did not answer 200 within 60 s (last: $(status /readyz))"
expect 'GET /healthz' "$(status /healthz)" 200
start=$SECONDS
kill -TERM "$pid"
for _ in $(seq 1 250); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "the image's worker did not exit within 25 s of SIGTERM"
code=0
wait "$pid" || code=$?
pid=""
[ "$code" = 0 ] || fail "the image's worker exited $code after SIGTERM, want 0; its log ends: $(tail -3 "$run_log" | tr '\n' ' ')"
lines=$(grep -c . "$run_log" || true)
[ "$lines" -ge 3 ] || fail "the image's worker logged $lines lines, want at least 3"
# logrus writes one JSON object a line, keys sorted.
bad=$(grep -vxE '\{.*"level":"[a-z]+".*"msg":".*".*"time":"[^"]+".*\}' "$run_log" | head -1 || true)
[ -z "$bad" ] || fail "the image's worker logged a line that is not a JSON record with level, msg and time: $bad"
grep -q '"msg":"stop requested' "$run_log" || fail "the image's worker did not log that a stop was requested"
ok "worker: /readyz 200, /healthz 200, $lines JSON log lines, SIGTERM → exit 0 in $((SECONDS - start)) s"

size=$(inspect '{{.Size}}')
echo "image/test: $REF passed; size $size bytes ($(numfmt --to=iec "$size")B); queues and tables of namespace $ns stay in Azurite"
