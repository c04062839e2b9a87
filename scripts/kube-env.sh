#!/usr/bin/env bash
# A real kube-apiserver + etcd for KubeRelay's tests, built from the Go module
# proxy the way controller-runtime's envtest does, cached outside the repo.
#
#   scripts/kube-env.sh install              build kube-apiserver and etcd if not cached
#   scripts/kube-env.sh install-helm         build helm if not cached
#   scripts/kube-env.sh paths                print KUBE_APISERVER=, ETCD=, HELM= (cached paths)
#   scripts/kube-env.sh start DIR            start etcd + kube-apiserver on 127.0.0.1; writes
#                                            DIR/kubeconfig, DIR/pids, DIR/env, DIR/*.log
#   scripts/kube-env.sh stop DIR             stop both (TERM, bounded wait, KILL); keeps DIR
#   scripts/kube-env.sh restart-apiserver DIR  stop + start the apiserver only (same flags/port)
#   scripts/kube-env.sh compact DIR          compact etcd to its current revision (prints it)
#
# KUBE_ENV_OWNER_PID=PID at start: a watchdog stops both servers once PID has exited (a test
# run killed before its own clean-up).
# KUBE_ENV_APISERVER_ARGS="--flag=v ..." at start adds kube-apiserver flags (kept for restarts).
# After compact, a watch or an exact list from an older resourceVersion that reaches etcd gets
# 410 Gone. The apiserver's watch cache still serves watches from RVs it holds: they get 410
# once the apiserver is restarted (its cache then starts at the current RV), or at once when
# started with KUBE_ENV_APISERVER_ARGS=--watch-cache=false. etcd keeps the revision it compacts
# to, and a watch from RV X reads from X+1: X must be at least 2 behind the current revision.
#
# Cache: ${KUBERELAY_CACHE:-${XDG_CACHE_HOME:-~/.cache}/kuberelay}/{bin,build}. Binaries carry
# their version in their file name, so bumping a version below rebuilds.
# Everything listens on 127.0.0.1 only. Every go/network/wait step is time-bounded.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.32.13}   # kubectl here is v1.32: same minor, no skew
ETCD_VERSION=${ETCD_VERSION:-v3.5.16}    # what k8s.io/kubernetes v1.32.13's go.mod pins
HELM_VERSION=${HELM_VERSION:-v3.17.4}    # built against k8s.io/* v0.32.x
GO_TIMEOUT=${KUBE_ENV_GO_TIMEOUT:-40m}   # per go command
READY_TIMEOUT=${KUBE_ENV_READY_TIMEOUT:-60}  # seconds, per start

CACHE=${KUBERELAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kuberelay}
BIN=$CACHE/bin
BUILD=$CACHE/build
KUBE_APISERVER=$BIN/kube-apiserver-$KUBE_VERSION
ETCD=$BIN/etcd-$ETCD_VERSION
HELM=$BIN/helm-$HELM_VERSION

log() { echo "kube-env: $*" >&2; }
die() { echo "kube-env: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- install

gocmd() {
  # Every go command bounded; module mode, static, no toolchain downloads.
  env GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off \
    timeout --kill-after=30s "$GO_TIMEOUT" go "$@"
}

with_lock() {
  # Serialise concurrent installs (two test runs at once); bounded wait.
  mkdir -p "$BIN" "$BUILD"
  exec 9>"$CACHE/install.lock"
  flock -w 3600 9 || die "timed out waiting for $CACHE/install.lock"
}

# build_module NAME OUT PKG GOMOD_BODY [LDFLAGS]
build_module() {
  local name=$1 out=$2 pkg=$3 body=$4 ldflags=${5:-}
  local dir=$BUILD/$name
  rm -rf "$dir"; mkdir -p "$dir"
  printf '%s\n' "$body" >"$dir/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" >"$dir/tools.go"
  local t0=$SECONDS
  log "$name: resolving modules (go mod download; first time downloads a lot)"
  (cd "$dir" && gocmd mod tidy -e >"$dir/tidy.log" 2>&1) || { tail -30 "$dir/tidy.log" >&2; die "$name: go mod tidy failed"; }
  (cd "$dir" && gocmd mod download >>"$dir/tidy.log" 2>&1) || { tail -30 "$dir/tidy.log" >&2; die "$name: go mod download failed"; }
  log "$name: modules ready after $((SECONDS - t0))s; compiling $pkg (minutes on 2 cores)"
  (cd "$dir" && gocmd build -trimpath -ldflags="-s -w $ldflags" -o "$out.tmp" "$pkg" >"$dir/build.log" 2>&1) \
    || { tail -40 "$dir/build.log" >&2; rm -f "$out.tmp"; die "$name: go build failed (log: $dir/build.log)"; }
  mv -f "$out.tmp" "$out"
  log "$name: built $out in $((SECONDS - t0))s"
}

install_etcd() {
  if [ -x "$ETCD" ]; then log "etcd $ETCD_VERSION cached: $ETCD"; return; fi
  # In etcd 3.5 the server module's root package is the etcd main (server/main.go).
  build_module "etcd-$ETCD_VERSION" "$ETCD" go.etcd.io/etcd/server/v3 "module kuberelay.local/build/etcd

go 1.23

require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
}

install_apiserver() {
  if [ -x "$KUBE_APISERVER" ]; then log "kube-apiserver $KUBE_VERSION cached: $KUBE_APISERVER"; return; fi
  local staging_version=v0.${KUBE_VERSION#v1.}
  log "kube-apiserver: fetching k8s.io/kubernetes@$KUBE_VERSION go.mod for its staging modules"
  local modfile
  modfile=$(cd "$BUILD" && gocmd mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$modfile" ] || die "could not download k8s.io/kubernetes@$KUBE_VERSION"
  # Every "k8s.io/X => ./staging/src/k8s.io/X" becomes "k8s.io/X => k8s.io/X v0.Y.Z".
  local replaces
  replaces=$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/src/.*#\t\1 => \1 '"$staging_version"'#p' "$modfile")
  [ -n "$replaces" ] || die "no staging replaces found in $modfile"
  local major minor
  major=$(cut -d. -f1 <<<"${KUBE_VERSION#v}"); minor=$(cut -d. -f2 <<<"$KUBE_VERSION")
  local ld=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  build_module "kube-apiserver-$KUBE_VERSION" "$KUBE_APISERVER" k8s.io/kubernetes/cmd/kube-apiserver "module kuberelay.local/build/kube-apiserver

go 1.23.0

require k8s.io/kubernetes $KUBE_VERSION

replace (
$replaces
)" "$ld"
}

install_helm() {
  if [ -x "$HELM" ]; then log "helm $HELM_VERSION cached: $HELM"; return; fi
  build_module "helm-$HELM_VERSION" "$HELM" helm.sh/helm/v3/cmd/helm "module kuberelay.local/build/helm

go 1.23.0

require helm.sh/helm/v3 $HELM_VERSION" "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
}

cmd_install() {
  command -v go >/dev/null || die "go not found"
  with_lock
  local t0=$SECONDS
  install_etcd
  install_apiserver
  log "install done in $((SECONDS - t0))s"
}

cmd_install_helm() {
  command -v go >/dev/null || die "go not found"
  with_lock
  install_helm
}

cmd_paths() {
  echo "KUBE_APISERVER=$KUBE_APISERVER"
  echo "ETCD=$ETCD"
  echo "HELM=$HELM"
}

# ---------------------------------------------------------------- start/stop

free_port() {
  python3 - <<'EOF'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
EOF
}

pid_of() {  # pid_of DIR NAME: the recorded PID, or nothing
  [ -f "$1/pids" ] || return 0
  sed -n "s/^$2=//p" "$1/pids" | tail -1
}

set_pid() {  # set_pid DIR NAME PID
  local f=$1/pids
  touch "$f"
  grep -v "^$2=" "$f" >"$f.tmp" || true
  echo "$2=$3" >>"$f.tmp"
  mv -f "$f.tmp" "$f"
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

stop_pid() {  # stop_pid PID NAME
  local pid=$1 name=$2 i
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do alive "$pid" || { log "stopped $name ($pid)"; return 0; }; sleep 0.1; done
  log "$name ($pid) ignored TERM for 10s: KILL"
  kill -KILL "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do alive "$pid" || return 0; sleep 0.1; done
  log "warning: $name ($pid) still alive after KILL"
}

gen_certs() {
  local d=$1/pki
  [ -f "$d/done" ] && return 0
  rm -rf "$d"; mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=kuberelay-test-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    echo "token,admin,admin,system:masters" >tokens.csv
    touch done
  ) >"$1/pki.log" 2>&1 || { cat "$1/pki.log" >&2; die "openssl failed"; }
}

start_etcd() {
  local dir=$1
  # shellcheck disable=SC1091
  . "$dir/env"
  mkdir -p "$dir/etcd-data"
  "$ETCD" --name kuberelay-test --data-dir "$dir/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "kuberelay-test=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn \
    </dev/null >>"$dir/etcd.log" 2>&1 &
  set_pid "$dir" etcd $!
  local i
  for i in $(seq 1 100); do
    if curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"'; then
      return 0
    fi
    alive "$(pid_of "$dir" etcd)" || break
    sleep 0.2
  done
  tail -30 "$dir/etcd.log" >&2
  stop_pid "$(pid_of "$dir" etcd)" etcd
  die "etcd did not become healthy on 127.0.0.1:$ETCD_PORT"
}

start_apiserver() {
  local dir=$1
  # shellcheck disable=SC1091
  . "$dir/env"
  local pki=$dir/pki
  mkdir -p "$dir/apiserver-certs"
  local extra=()
  [ -f "$dir/apiserver-extra-args" ] && mapfile -t extra <"$dir/apiserver-extra-args"
  "$KUBE_APISERVER" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --cert-dir "$dir/apiserver-certs" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --token-auth-file "$pki/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-issuer "https://127.0.0.1:$APISERVER_PORT" \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --disable-admission-plugins ServiceAccount \
    --allow-privileged=true \
    --endpoint-reconciler-type=none \
    --enable-priority-and-fairness=false \
    --profiling=false \
    --v=1 \
    "${extra[@]}" \
    </dev/null >>"$dir/apiserver.log" 2>&1 &
  set_pid "$dir" apiserver $!
  local i code=""
  for i in $(seq 1 $((READY_TIMEOUT * 2))); do
    code=$(curl -sS -o "$dir/readyz.out" -w '%{http_code}' --max-time 3 --cacert "$pki/ca.crt" \
      -H "Authorization: Bearer token" "https://127.0.0.1:$APISERVER_PORT/readyz" 2>/dev/null || true)
    [ "$code" = 200 ] && { log "kube-apiserver ready on https://127.0.0.1:$APISERVER_PORT"; return 0; }
    alive "$(pid_of "$dir" apiserver)" || { log "kube-apiserver exited"; break; }
    sleep 0.5
  done
  log "kube-apiserver not ready (last /readyz: ${code:-none}):"
  cat "$dir/readyz.out" >&2 2>/dev/null || true
  tail -40 "$dir/apiserver.log" >&2
  return 1
}

write_kubeconfig() {
  local dir=$1
  # shellcheck disable=SC1091
  . "$dir/env"
  local ca
  ca=$(base64 -w0 <"$dir/pki/ca.crt")
  cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kuberelay-test
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $ca
users:
- name: admin
  user:
    token: token
contexts:
- name: kuberelay-test
  context:
    cluster: kuberelay-test
    user: admin
current-context: kuberelay-test
EOF
}

cmd_start() {
  local dir=${1:?usage: start DIR}
  mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
  [ -x "$KUBE_APISERVER" ] && [ -x "$ETCD" ] || die "binaries not cached: run '$0 install' first"
  if alive "$(pid_of "$dir" apiserver)" || alive "$(pid_of "$dir" etcd)"; then
    die "$dir already has running processes ($(tr '\n' ' ' <"$dir/pids")): stop it first"
  fi
  gen_certs "$dir"
  if [ ! -f "$dir/env" ]; then
    {
      echo "ETCD_PORT=$(free_port)"
      echo "ETCD_PEER_PORT=$(free_port)"
      echo "APISERVER_PORT=$(free_port)"
    } >"$dir/env"
  fi
  # Extra kube-apiserver flags (whitespace-separated), kept for restart-apiserver.
  printf '%s\n' ${KUBE_ENV_APISERVER_ARGS:-} >"$dir/apiserver-extra-args"
  : >"$dir/pids"
  start_etcd "$dir"
  write_kubeconfig "$dir"
  if ! start_apiserver "$dir"; then
    cmd_stop "$dir"
    die "kube-apiserver failed to start (logs: $dir/apiserver.log)"
  fi
  if [ -n "${KUBE_ENV_OWNER_PID:-}" ]; then
    # Safety net for a test run that is killed before it can call stop: once the owner process
    # is gone, stop both servers.
    local owner=$KUBE_ENV_OWNER_PID
    (
      trap '' HUP
      while kill -0 "$owner" 2>/dev/null; do sleep 2; done
      log "owner $owner is gone: stopping $dir"
      cmd_stop "$dir" watchdog
    ) </dev/null >>"$dir/watchdog.log" 2>&1 &
    set_pid "$dir" watchdog $!
  fi
  echo "$dir/kubeconfig"
}

cmd_stop() {
  local dir=${1:?usage: stop DIR}
  if [ "${2:-}" != watchdog ]; then
    local w
    w=$(pid_of "$dir" watchdog)
    alive "$w" && kill -TERM "$w" 2>/dev/null || true
  fi
  stop_pid "$(pid_of "$dir" apiserver)" kube-apiserver
  stop_pid "$(pid_of "$dir" etcd)" etcd
}

cmd_restart_apiserver() {
  local dir=${1:?usage: restart-apiserver DIR}
  dir=$(cd "$dir" && pwd)
  [ -f "$dir/env" ] || die "$dir was not started"
  stop_pid "$(pid_of "$dir" apiserver)" kube-apiserver
  alive "$(pid_of "$dir" etcd)" || die "etcd is not running in $dir"
  start_apiserver "$dir" || die "kube-apiserver failed to restart (logs: $dir/apiserver.log)"
}

cmd_compact() {
  local dir=${1:?usage: compact DIR}
  # shellcheck disable=SC1091
  . "$dir/env"
  local url=http://127.0.0.1:$ETCD_PORT out rev
  # The gRPC gateway: a range on an empty key reports the current revision in its header.
  out=$(curl -fsS --max-time 10 -X POST "$url/v3/kv/range" -d '{"key":"AA=="}') || die "etcd range failed"
  rev=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])' <<<"$out")
  out=$(curl -sS --max-time 30 -X POST "$url/v3/kv/compaction" -d "{\"revision\":\"$rev\",\"physical\":true}") \
    || die "etcd compaction to $rev failed"
  case "$out" in
    *'"header"'*) log "etcd compacted to revision $rev" ;;
    *'has been compacted'*) log "etcd was already compacted at $rev" ;;
    *) die "etcd compaction to $rev failed: $out" ;;
  esac
  echo "$rev"
}

case "${1:-}" in
  install) cmd_install ;;
  install-helm) cmd_install_helm ;;
  paths) cmd_paths ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  restart-apiserver) shift; cmd_restart_apiserver "$@" ;;
  compact) shift; cmd_compact "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
