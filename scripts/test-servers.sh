#!/usr/bin/env bash
# Real servers the connector tests talk to, on loopback: moto's S3-compatible server (PyPI) and
# Azurite's Blob service (npm, installed into ~/.cache/outflow/azurite), and OpenSSH's sshd
# (Debian) serving SFTP with key authentication for the current user.
#   scripts/test-servers.sh start   install what is missing, start, wait until it answers
#   scripts/test-servers.sh env     print the variables the tests read (eval "$(... env)")
#   scripts/test-servers.sh stop    stop what start started
set -euo pipefail
STATE=${OUTFLOW_TEST_SERVERS_STATE:-/tmp/outflow-test-servers-$(id -u)}
S3_PORT=${OUTFLOW_TEST_S3_PORT:-5055}
AZURITE_PORT=${OUTFLOW_TEST_AZURITE_PORT:-10055}
SFTP_PORT=${OUTFLOW_TEST_SFTP_PORT:-2255}
AZURITE_DIR=${OUTFLOW_AZURITE_DIR:-${HOME:-/tmp}/.cache/outflow/azurite}
log() { printf 'test-servers: %s\n' "$*" >&2; }

start_moto() {
    if [[ -f $STATE/moto.pid ]] && kill -0 "$(cat "$STATE/moto.pid")" 2>/dev/null; then
        log "moto already running on 127.0.0.1:$S3_PORT"
        return
    fi
    python3 -c "import moto.server, boto3" 2>/dev/null || python3 -m pip install --quiet "moto[server]" boto3
    mkdir -p "$STATE"
    python3 -m moto.server -H 127.0.0.1 -p "$S3_PORT" >"$STATE/moto.log" 2>&1 &
    echo $! >"$STATE/moto.pid"
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$S3_PORT/moto-api/" 2>/dev/null; then
            log "moto (S3) ready on 127.0.0.1:$S3_PORT"
            return
        fi
        sleep 0.2
    done
    tail -20 "$STATE/moto.log" >&2
    log "error: moto did not answer on 127.0.0.1:$S3_PORT"
    exit 1
}

start_azurite() {
    if [[ -f $STATE/azurite.pid ]] && kill -0 "$(cat "$STATE/azurite.pid")" 2>/dev/null; then
        log "azurite already running on 127.0.0.1:$AZURITE_PORT"
        return
    fi
    if [[ ! -x $AZURITE_DIR/node_modules/.bin/azurite-blob ]]; then
        mkdir -p "$AZURITE_DIR"
        (cd "$AZURITE_DIR" && npm install --silent --no-audit --no-fund azurite@3.35)
    fi
    python3 -c "import azure.storage.blob" 2>/dev/null || python3 -m pip install --quiet azure-storage-blob
    mkdir -p "$STATE/azurite"
    "$AZURITE_DIR/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" \
        --location "$STATE/azurite" --skipApiVersionCheck --loose --silent >"$STATE/azurite.log" 2>&1 &
    echo $! >"$STATE/azurite.pid"
    for _ in $(seq 1 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$AZURITE_PORT/devstoreaccount1?comp=list" 2>/dev/null; then
            log "azurite (Blob) ready on 127.0.0.1:$AZURITE_PORT"
            return
        fi
        sleep 0.2
    done
    tail -20 "$STATE/azurite.log" >&2
    log "error: azurite did not answer on 127.0.0.1:$AZURITE_PORT"
    exit 1
}

start_sshd() {
    if [[ -f $STATE/sshd.pid ]] && kill -0 "$(cat "$STATE/sshd.pid")" 2>/dev/null; then
        log "sshd already running on 127.0.0.1:$SFTP_PORT"
        return
    fi
    if [[ ! -x /usr/sbin/sshd ]] || ! command -v sftp >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null
    fi
    mkdir -p "$STATE/sftp/upload" /run/sshd
    rm -f "$STATE/host_key" "$STATE/client_key"
    ssh-keygen -q -t ed25519 -N "" -f "$STATE/host_key"
    ssh-keygen -q -t ed25519 -N "" -f "$STATE/client_key"
    cp "$STATE/client_key.pub" "$STATE/authorized_keys"
    chmod 600 "$STATE/authorized_keys"
    cat >"$STATE/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $SFTP_PORT
HostKey $STATE/host_key
PidFile $STATE/sshd.pid
AuthorizedKeysFile $STATE/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
CONF
    /usr/sbin/sshd -f "$STATE/sshd_config" -E "$STATE/sshd.log"
    for _ in $(seq 1 50); do
        if [[ -s $STATE/sshd.pid ]] && (exec 3<>"/dev/tcp/127.0.0.1/$SFTP_PORT") 2>/dev/null; then
            log "sshd (SFTP) ready on 127.0.0.1:$SFTP_PORT"
            return
        fi
        sleep 0.2
    done
    cat "$STATE/sshd.log" >&2
    log "error: sshd did not start on 127.0.0.1:$SFTP_PORT"
    exit 1
}

case ${1:-} in
    start) start_moto; start_azurite; start_sshd ;;
    env)
        echo "export OUTFLOW_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT"
        echo "export OUTFLOW_TEST_AZURITE_ENDPOINT=http://127.0.0.1:$AZURITE_PORT/devstoreaccount1"
        echo "export OUTFLOW_TEST_SFTP_PORT=$SFTP_PORT OUTFLOW_TEST_SFTP_USER=$(id -un)"
        echo "export OUTFLOW_TEST_SFTP_KEY=$STATE/client_key OUTFLOW_TEST_SFTP_DIR=$STATE/sftp"
        echo "export OUTFLOW_TEST_SFTP_FINGERPRINT=$(ssh-keygen -l -E sha256 -f "$STATE/host_key.pub" 2>/dev/null | awk '{print $2}')"
        ;;
    stop)
        for name in moto azurite sshd; do
            if [[ -f $STATE/$name.pid ]]; then
                kill "$(cat "$STATE/$name.pid")" 2>/dev/null || true
            fi
        done
        rm -rf "$STATE"
        ;;
    *) echo "usage: $0 start|env|stop" >&2; exit 2 ;;
esac
