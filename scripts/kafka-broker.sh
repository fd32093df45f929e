#!/usr/bin/env bash
# A real Apache Kafka broker for the Kafka connector's tests: one KRaft node (broker and
# controller), run from the Apache Kafka jars on Maven Central, on loopback only.
#   scripts/kafka-broker.sh install   resolve the jars with Maven into ~/.cache/outflow/kafka/<version>
#   scripts/kafka-broker.sh start     install if missing, format the log dir, start, wait until it answers
#   scripts/kafka-broker.sh env       print the variables the tests read (eval "$(... env)")
#   scripts/kafka-broker.sh stop      stop it and remove its state
# Listeners: PLAINTEXT on :19092, SASL_PLAINTEXT (PLAIN, user outflow) on :19093, controller :19094,
# SSL on :19095 with a certificate from a private CA made at start.
set -euo pipefail
VERSION=${OUTFLOW_KAFKA_VERSION:-4.4.0}
LOG4J=2.25.5 # the log4j that Kafka 4.4.0 comes with, and its slf4j 1.x binding: the broker logs to a file
DIR=${OUTFLOW_KAFKA_DIR:-${HOME:-/tmp}/.cache/outflow/kafka/$VERSION}
STATE=${OUTFLOW_KAFKA_STATE:-/tmp/outflow-kafka-$(id -u)}
PORT=${OUTFLOW_TEST_KAFKA_PORT:-19092}
SASL_PORT=${OUTFLOW_TEST_KAFKA_SASL_PORT:-19093}
CONTROLLER_PORT=${OUTFLOW_TEST_KAFKA_CONTROLLER_PORT:-19094}
SSL_PORT=${OUTFLOW_TEST_KAFKA_SSL_PORT:-19095}
SASL_USER=outflow
SASL_PASSWORD=outflow-kafka-secret
log() { printf 'kafka-broker: %s\n' "$*" >&2; }

install() {
    if [[ -f $DIR/libs/.complete ]]; then
        return
    fi
    log "resolving Apache Kafka $VERSION with Maven into $DIR/libs"
    mkdir -p "$DIR/libs"
    cat >"$DIR/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.outflow</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J</version></dependency>
  </dependencies>
</project>
POM
    (cd "$DIR" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=libs -DincludeScope=runtime) \
        >"$DIR/mvn.log" 2>&1 || { cat "$DIR/mvn.log" >&2; log "error: Maven could not resolve Kafka $VERSION"; exit 1; }
    touch "$DIR/libs/.complete"
}

running() {
    [[ -f $STATE/kafka.pid ]] && kill -0 "$(cat "$STATE/kafka.pid")" 2>/dev/null
}

start() {
    if running; then
        log "already running on 127.0.0.1:$PORT"
        return
    fi
    install
    rm -rf "$STATE" && mkdir -p "$STATE/data"
    make_certificates
    cat >"$STATE/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT,SSL://127.0.0.1:$SSL_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT,SSL://127.0.0.1:$SSL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT
listener.name.ssl.ssl.keystore.type=PEM
listener.name.ssl.ssl.keystore.location=$STATE/tls/broker.pem
listener.name.ssl.ssl.client.auth=none
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$SASL_USER" password="$SASL_PASSWORD" user_$SASL_USER="$SASL_PASSWORD";
log.dirs=$STATE/data
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
    cat >"$STATE/log4j2.properties" <<LOG
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
appender.file.type=File
appender.file.name=file
appender.file.fileName=$STATE/server.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
LOG
    local java=(java -Xms256m -Xmx512m -Dlog4j2.configurationFile="$STATE/log4j2.properties" -cp "$DIR/libs/*")
    "${java[@]}" kafka.tools.StorageTool format --standalone -t "$(uuid_like)" -c "$STATE/server.properties" \
        >"$STATE/format.log" 2>&1 || { cat "$STATE/format.log" >&2; exit 1; }
    nohup "${java[@]}" kafka.Kafka "$STATE/server.properties" >"$STATE/stdout.log" 2>&1 &
    echo $! >"$STATE/kafka.pid"
    for _ in $(seq 1 120); do
        if grep -q "Kafka Server started" "$STATE/server.log" 2>/dev/null && answers "$PORT" && answers "$SASL_PORT" && answers "$SSL_PORT"; then
            log "ready on 127.0.0.1:$PORT (SASL on :$SASL_PORT, TLS on :$SSL_PORT)"
            return
        fi
        if ! running; then
            break
        fi
        sleep 0.5
    done
    tail -n 30 "$STATE/server.log" "$STATE/stdout.log" >&2 2>/dev/null || true
    grep -E '^\[[^]]*\] (ERROR|FATAL)' "$STATE/server.log" 2>/dev/null | head -n 10 >&2 || true
    kill -9 "$(cat "$STATE/kafka.pid")" 2>/dev/null || true
    rm -f "$STATE/kafka.pid"
    log "error: the broker exited or did not answer within 60 s (logs in $STATE)"
    exit 1
}

# A private CA and a broker certificate for 127.0.0.1 signed by it (the SSL listener's keystore:
# PKCS#8 key and certificate in one PEM file). Clients trust the CA through OUTFLOW_TEST_KAFKA_CA.
make_certificates() {
    local tls=$STATE/tls
    mkdir -p "$tls"
    (
        cd "$tls"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -subj /CN=outflow-kafka-test-ca -keyout ca.key -out ca.pem
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -subj /CN=127.0.0.1 -keyout broker.key -out broker.csr
        printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >broker.ext
        openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile broker.ext -out broker.crt
        openssl pkcs8 -topk8 -nocrypt -in broker.key -out broker.pk8
        cat broker.pk8 broker.crt >broker.pem
    ) >"$STATE/openssl.log" 2>&1 || { cat "$STATE/openssl.log" >&2; exit 1; }
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A cluster ID: 16 random bytes, base64url without padding, as kafka-storage random-uuid prints;
# like it, never one starting with '-', which the tool's option parser would take for an option.
uuid_like() {
    local id
    while id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='); [[ $id == -* ]]; do :; done
    echo "$id"
}

stop() {
    if running; then
        local pid
        pid=$(cat "$STATE/kafka.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "$pid" 2>/dev/null || true
        log "stopped"
    fi
    rm -rf "$STATE"
}

case ${1:-} in
install) install ;;
start) start ;;
stop) stop ;;
env)
    echo "export OUTFLOW_TEST_KAFKA_BOOTSTRAP=127.0.0.1:$PORT"
    echo "export OUTFLOW_TEST_KAFKA_SASL_BOOTSTRAP=127.0.0.1:$SASL_PORT"
    echo "export OUTFLOW_TEST_KAFKA_SASL_USER=$SASL_USER"
    echo "export OUTFLOW_TEST_KAFKA_SASL_PASSWORD=$SASL_PASSWORD"
    echo "export OUTFLOW_TEST_KAFKA_SSL_BOOTSTRAP=127.0.0.1:$SSL_PORT"
    echo "export OUTFLOW_TEST_KAFKA_CA=$STATE/tls/ca.pem"
    ;;
*)
    echo "usage: $0 install|start|env|stop" >&2
    exit 2
    ;;
esac
