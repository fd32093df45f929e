#!/usr/bin/env bash
# Test control plane for Outflow: a real etcd + kube-apiserver (+ a
# kube-controller-manager running only a few controllers) on loopback, built
# from pinned Go sources (scripts/kube-env/go.mod, scripts/kube-env/etcd/go.mod).
#
#   scripts/kube-env.sh build    build the binaries into the cache (no-op when cached)
#   scripts/kube-env.sh start    generate certs/tokens, start everything, wait until ready
#   scripts/kube-env.sh env      print `export ...` lines for the kubeconfigs (eval "$(... env)")
#   scripts/kube-env.sh status   exit 0 when running and ready
#   scripts/kube-env.sh stop     stop both processes and remove the state dir
#
# Environment:
#   OUTFLOW_KUBE_CACHE          binary cache root   (default $HOME/.cache/outflow/kube)
#   OUTFLOW_KUBE_STATE          state dir           (default /tmp/outflow-kube-$(id -u))
#   OUTFLOW_APISERVER_PORT      kube-apiserver port (default 16443, bound to 127.0.0.1)
#   OUTFLOW_ETCD_PORT           etcd client port    (default 23790, bound to 127.0.0.1)
#   OUTFLOW_ETCD_PEER_PORT      etcd peer port      (default 23800, bound to 127.0.0.1)
#   OUTFLOW_KUBE_START_TIMEOUT  seconds to wait for readiness (default 60)
#   OUTFLOW_KUBE_CONTROLLERS    kube-controller-manager --controllers list, or "none"
#                               (default: clusterrole-aggregation, namespace,
#                               garbage-collector, serviceaccount, serviceaccount-token,
#                               root-ca-certificate-publisher)
#
# The controller-manager is needed even for API-only tests: the bootstrap
# ClusterRoles view/edit/admin are aggregated roles whose rules are filled in by
# the clusterrole-aggregation controller (without it they have no rules).
# There is no scheduler or kubelet and no workload controllers: Pods are never
# scheduled, Deployments never get ReplicaSets.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MOD_DIR=$SCRIPT_DIR/kube-env
ETCD_MOD_DIR=$MOD_DIR/etcd

# Version of module $2 required by go.mod $1 (single-line or block require).
mod_version() {
    awk -v m="$2" '
        $1 == "require" && $2 == m { print $3; exit }
        $1 == m && $2 ~ /^v[0-9]/  { print $2; exit }
    ' "$1"
}

K8S_VERSION=$(mod_version "$MOD_DIR/go.mod" k8s.io/kubernetes)
ETCD_VERSION=$(mod_version "$ETCD_MOD_DIR/go.mod" go.etcd.io/etcd/server/v3)
CACHE_ROOT=${OUTFLOW_KUBE_CACHE:-${HOME:-/tmp}/.cache/outflow/kube}
BIN_DIR=$CACHE_ROOT/${K8S_VERSION#v}-etcd${ETCD_VERSION#v}
APISERVER_BIN=$BIN_DIR/kube-apiserver
ETCD_BIN=$BIN_DIR/etcd
KCM_BIN=$BIN_DIR/kube-controller-manager

STATE=${OUTFLOW_KUBE_STATE:-/tmp/outflow-kube-$(id -u)}
[[ $STATE == /* ]] || STATE=$PWD/$STATE
STATE=${STATE%/}
MARKER=$STATE/.outflow-kube-env
PKI=$STATE/pki

APISERVER_PORT=${OUTFLOW_APISERVER_PORT:-16443}
ETCD_PORT=${OUTFLOW_ETCD_PORT:-23790}
ETCD_PEER_PORT=${OUTFLOW_ETCD_PEER_PORT:-23800}
START_TIMEOUT=${OUTFLOW_KUBE_START_TIMEOUT:-60}
DEFAULT_CONTROLLERS=clusterrole-aggregation-controller,namespace-controller,garbage-collector-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller
CONTROLLERS=${OUTFLOW_KUBE_CONTROLLERS:-$DEFAULT_CONTROLLERS}
APISERVER_URL=https://127.0.0.1:$APISERVER_PORT
ETCD_URL=http://127.0.0.1:$ETCD_PORT
ETCD_PEER_URL=http://127.0.0.1:$ETCD_PEER_PORT

USERS=(admin viewer manager activator)
# Processes in start order; stopped in reverse.
PROCS=(etcd kube-apiserver)
[[ $CONTROLLERS == none ]] || PROCS+=(kube-controller-manager)

log() { printf 'kube-env: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

now() { printf '%s' "${EPOCHREALTIME:-$(date +%s.%N)}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

# ---------------------------------------------------------------- build ----

cmd_build() {
    [[ -n $K8S_VERSION && -n $ETCD_VERSION ]] || die "cannot read versions from $MOD_DIR/go.mod and $ETCD_MOD_DIR/go.mod"
    if [[ -x $APISERVER_BIN && -x $KCM_BIN && -x $ETCD_BIN ]]; then
        log "kubernetes $K8S_VERSION and etcd $ETCD_VERSION binaries already built in $BIN_DIR"
        return 0
    fi
    command -v go >/dev/null || die "go is not installed"
    mkdir -p "$BIN_DIR"
    trap 'rm -f -- "$BIN_DIR"/*.tmp.$$' EXIT
    local t0 t
    t0=$(now)
    log "building into $BIN_DIR with $(go version)"
    local -a goflags=(-mod=readonly -trimpath -buildvcs=false)

    if [[ ! -x $ETCD_BIN ]]; then
        t=$(now)
        log "building etcd $ETCD_VERSION (go.etcd.io/etcd/server/v3/etcdmain)..."
        (cd "$ETCD_MOD_DIR" && CGO_ENABLED=0 go build "${goflags[@]}" \
            -ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
            -o "$ETCD_BIN.tmp.$$" .)
        mv -f "$ETCD_BIN.tmp.$$" "$ETCD_BIN"
        log "built etcd in $(since "$t")"
    fi

    # Same version stamping as kubernetes' hack/lib/version.sh.
    local v=${K8S_VERSION#v} ldflags=(-s -w) pkg key
    local major=${v%%.*} minor=${v#*.}
    minor=${minor%%.*}
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        for key in gitVersion="$K8S_VERSION" gitMajor="$major" gitMinor="$minor" \
            gitTreeState=clean buildDate="$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
            ldflags+=(-X "$pkg.$key")
        done
    done
    local cmd
    for cmd in kube-apiserver kube-controller-manager; do
        [[ ! -x $BIN_DIR/$cmd ]] || continue
        t=$(now)
        log "building $cmd $K8S_VERSION (k8s.io/kubernetes/cmd/$cmd)..."
        (cd "$MOD_DIR" && CGO_ENABLED=0 go build "${goflags[@]}" \
            -ldflags="${ldflags[*]}" \
            -o "$BIN_DIR/$cmd.tmp.$$" "k8s.io/kubernetes/cmd/$cmd")
        mv -f "$BIN_DIR/$cmd.tmp.$$" "$BIN_DIR/$cmd"
        log "built $cmd in $(since "$t")"
    done
    log "build done in $(since "$t0")"
}

# ------------------------------------------------------------ processes ----

# True when pid file $1 names a live process started by this script for $STATE.
pid_alive() {
    local pidfile=$1 pid cmdline
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"$STATE/"* ]]
}

stop_one() {
    local name=$1 pidfile=$STATE/$1.pid pid i
    if pid_alive "$pidfile"; then
        pid=$(<"$pidfile")
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            pid_alive "$pidfile" || break
            sleep 0.1
        done
        if pid_alive "$pidfile"; then
            log "$name did not exit after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 20; i++)); do
                pid_alive "$pidfile" || break
                sleep 0.1
            done
        fi
    fi
    rm -f -- "$pidfile"
}

stop_processes() {
    # All possible processes, whatever OUTFLOW_KUBE_CONTROLLERS says now.
    stop_one kube-controller-manager
    stop_one kube-apiserver
    stop_one etcd
}

all_alive() {
    local name
    for name in "${PROCS[@]}"; do
        pid_alive "$STATE/$name.pid" || return 1
    done
}

any_alive() {
    local name
    for name in etcd kube-apiserver kube-controller-manager; do
        pid_alive "$STATE/$name.pid" && return 0
    done
    return 1
}

# Remove $STATE, refusing to touch a non-empty directory this script did not create.
remove_state() {
    [[ -d $STATE ]] || return 0
    [[ $STATE != / && -n $STATE ]] || die "refusing to remove '$STATE'"
    if [[ ! -e $MARKER && -n $(ls -A -- "$STATE") ]]; then
        die "$STATE exists but was not created by kube-env.sh; refusing to remove it (set OUTFLOW_KUBE_STATE)"
    fi
    rm -rf -- "$STATE"
}

admin_curl() {
    curl -fsS --max-time 5 -A outflow-kube-env --cacert "$PKI/ca.crt" \
        -H "Authorization: Bearer $(<"$STATE/admin.token")" "$@"
}

is_ready() {
    [[ -f $STATE/admin.token ]] || return 1
    [[ $(admin_curl "$APISERVER_URL/readyz" 2>/dev/null) == ok ]]
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

tail_logs() {
    local f
    for f in "$STATE/etcd.log" "$STATE/kube-apiserver.log" "$STATE/kube-controller-manager.log"; do
        [[ -f $f ]] || continue
        log "---- last 40 lines of $f ----"
        tail -n 40 -- "$f" >&2
    done
}

# --------------------------------------------------------------- start -----

gen_pki() {
    mkdir -p "$PKI"
    (
        cd "$PKI"
        openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
            -keyout ca.key -out ca.crt -subj "/CN=outflow-test-ca" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        cat >serving.ext <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
        openssl req -newkey rsa:2048 -nodes -sha256 -keyout apiserver.key -out apiserver.csr \
            -subj "/CN=kube-apiserver" 2>/dev/null
        openssl x509 -req -sha256 -days 365 -in apiserver.csr -CA ca.crt -CAkey ca.key \
            -set_serial "0x$(openssl rand -hex 16)" -extfile serving.ext -out apiserver.crt 2>/dev/null
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
        openssl pkey -in sa.key -pubout -out sa.pub
        rm -f apiserver.csr
        chmod 600 ./*.key
    )
}

gen_tokens() {
    local user token
    : >"$STATE/tokens.csv"
    for user in "${USERS[@]}" kube-controller-manager; do
        token=$(openssl rand -hex 32)
        printf '%s' "$token" >"$STATE/$user.token"
        if [[ $user == admin ]]; then
            printf '%s,%s,%s,"system:masters"\n' "$token" "$user" "$user" >>"$STATE/tokens.csv"
        elif [[ $user == kube-controller-manager ]]; then
            printf '%s,system:%s,%s,"system:masters"\n' "$token" "$user" "$user" >>"$STATE/tokens.csv"
        else
            printf '%s,%s,%s\n' "$token" "$user" "$user" >>"$STATE/tokens.csv"
        fi
    done
    chmod 600 "$STATE/tokens.csv" "$STATE"/*.token
}

write_kubeconfig() {
    local user=$1 file=$STATE/$1.kubeconfig
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: outflow-test
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $user
  user:
    token: $(<"$STATE/$user.token")
contexts:
- name: $user@outflow-test
  context:
    cluster: outflow-test
    user: $user
    namespace: default
current-context: $user@outflow-test
EOF
    chmod 600 "$file"
}

start_etcd() {
    nohup "$ETCD_BIN" \
        --name=outflow \
        --data-dir="$STATE/etcd" \
        --listen-client-urls="$ETCD_URL" \
        --advertise-client-urls="$ETCD_URL" \
        --listen-peer-urls="$ETCD_PEER_URL" \
        --initial-advertise-peer-urls="$ETCD_PEER_URL" \
        --initial-cluster="outflow=$ETCD_PEER_URL" \
        --initial-cluster-state=new \
        --unsafe-no-fsync \
        </dev/null >"$STATE/etcd.log" 2>&1 &
    echo "$!" >"$STATE/etcd.pid"
}

start_apiserver() {
    nohup "$APISERVER_BIN" \
        --bind-address=127.0.0.1 \
        --advertise-address=127.0.0.1 \
        --secure-port="$APISERVER_PORT" \
        --cert-dir="$PKI" \
        --tls-cert-file="$PKI/apiserver.crt" \
        --tls-private-key-file="$PKI/apiserver.key" \
        --etcd-servers="$ETCD_URL" \
        --token-auth-file="$STATE/tokens.csv" \
        --authorization-mode=Node,RBAC \
        --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,DefaultTolerationSeconds,NodeRestriction,Priority,ResourceQuota,MutatingAdmissionWebhook,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$PKI/sa.pub" \
        --service-account-signing-key-file="$PKI/sa.key" \
        --service-cluster-ip-range=10.96.0.0/16 \
        --endpoint-reconciler-type=none \
        --allow-privileged=true \
        --profiling=false \
        </dev/null >"$STATE/kube-apiserver.log" 2>&1 &
    echo "$!" >"$STATE/kube-apiserver.pid"
}

start_controller_manager() {
    nohup "$KCM_BIN" \
        --kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
        --controllers="$CONTROLLERS" \
        --leader-elect=false \
        --secure-port=0 \
        --service-account-private-key-file="$PKI/sa.key" \
        --root-ca-file="$PKI/ca.crt" \
        --cluster-name=outflow-test \
        --cert-dir="$PKI" \
        </dev/null >"$STATE/kube-controller-manager.log" 2>&1 &
    echo "$!" >"$STATE/kube-controller-manager.pid"
}

# Wait until command "$2..." succeeds; $1 describes it. Fails if a process died or on timeout.
wait_for() {
    local what=$1 deadline
    shift
    deadline=$((SECONDS + START_TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        local name
        for name in "${PROCS[@]}"; do
            if [[ -f $STATE/$name.pid ]] && ! pid_alive "$STATE/$name.pid"; then
                tail_logs
                die "$name exited while waiting for $what (logs in $STATE)"
            fi
        done
        if ((SECONDS >= deadline)); then
            tail_logs
            die "timed out after ${START_TIMEOUT}s waiting for $what (logs in $STATE)"
        fi
        sleep 0.25
    done
}

etcd_healthy() {
    curl -fsS --max-time 2 "$ETCD_URL/health" | grep -q '"health":"true"'
}

bootstrap_done() {
    local path
    for path in /api/v1/namespaces/default /api/v1/namespaces/kube-system \
        /apis/rbac.authorization.k8s.io/v1/clusterroles/view \
        /apis/rbac.authorization.k8s.io/v1/clusterroles/edit \
        /apis/rbac.authorization.k8s.io/v1/clusterroles/admin \
        /apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies; do
        admin_curl -o /dev/null "$APISERVER_URL$path" || return 1
    done
}

# The aggregated bootstrap roles have rules once the aggregation controller ran.
roles_aggregated() {
    local role
    for role in view edit admin; do
        admin_curl "$APISERVER_URL/apis/rbac.authorization.k8s.io/v1/clusterroles/$role" |
            grep -q '"rules":\[{' || return 1
    done
}

default_sa_exists() {
    admin_curl -o /dev/null "$APISERVER_URL/api/v1/namespaces/default/serviceaccounts/default"
}

cmd_start() {
    local t0
    t0=$(now)
    if all_alive && is_ready; then
        log "already running and ready at $APISERVER_URL (state $STATE)"
        return 0
    fi
    if any_alive; then
        log "found a half-running control plane in $STATE; restarting it"
        stop_processes
    fi
    command -v curl >/dev/null || die "curl is required"
    command -v openssl >/dev/null || die "openssl is required"
    cmd_build

    local port
    for port in "$APISERVER_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT"; do
        if port_in_use "$port"; then
            die "127.0.0.1:$port is already in use (set OUTFLOW_APISERVER_PORT / OUTFLOW_ETCD_PORT / OUTFLOW_ETCD_PEER_PORT)"
        fi
    done

    remove_state
    mkdir -p "$STATE"
    chmod 700 "$STATE"
    : >"$MARKER"
    gen_pki
    gen_tokens
    local user
    for user in "${USERS[@]}" kube-controller-manager; do
        write_kubeconfig "$user"
    done

    log "starting etcd $ETCD_VERSION on $ETCD_URL"
    start_etcd
    wait_for "etcd health" etcd_healthy
    log "starting kube-apiserver $K8S_VERSION on $APISERVER_URL"
    start_apiserver
    wait_for "kube-apiserver /readyz" is_ready
    wait_for "default namespace and bootstrap RBAC roles" bootstrap_done
    if [[ $CONTROLLERS != none ]]; then
        log "starting kube-controller-manager (controllers: $CONTROLLERS)"
        start_controller_manager
        if [[ $CONTROLLERS == "$DEFAULT_CONTROLLERS" ]]; then
            wait_for "aggregated ClusterRoles view/edit/admin" roles_aggregated
            wait_for "ServiceAccount default/default" default_sa_exists
        fi
    fi
    log "ready in $(since "$t0"); state and logs in $STATE"
    log "use: eval \"\$($0 env)\""
}

# ------------------------------------------------------- stop/status/env ---

cmd_stop() {
    stop_processes
    remove_state
    log "stopped (state $STATE removed)"
}

cmd_status() {
    local name
    for name in "${PROCS[@]}"; do
        if pid_alive "$STATE/$name.pid"; then
            log "$name: running (pid $(<"$STATE/$name.pid"))"
        else
            log "$name: not running"
        fi
    done
    if all_alive && is_ready; then
        log "ready at $APISERVER_URL (state $STATE)"
        return 0
    fi
    log "not ready"
    return 1
}

cmd_env() {
    local line
    for line in "KUBECONFIG admin" "OUTFLOW_TEST_KUBECONFIG_ADMIN admin" \
        "OUTFLOW_TEST_KUBECONFIG_VIEWER viewer" "OUTFLOW_TEST_KUBECONFIG_MANAGER manager" \
        "OUTFLOW_TEST_KUBECONFIG_ACTIVATOR activator"; do
        printf 'export %s=%q\n' "${line% *}" "$STATE/${line#* }.kubeconfig"
    done
    printf 'export OUTFLOW_TEST_KUBE_STATE=%q\n' "$STATE"
}

case ${1:-} in
build) cmd_build ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
