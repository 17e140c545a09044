#!/bin/bash
# The Kafka image's entrypoint: the official apache/kafka image's interface, as far as the
# chart uses it (charts/cinepulse/templates/kafka/kafka-statefulset.yaml).
#
# * Each KAFKA_FOO_BAR variable becomes `foo.bar=<value>` in server.properties; in a name,
#   `__` stands for `_` and `___` for `-` (KAFKA_LISTENER_NAME_X___Y = listener.name.x-y).
#   The JVM's variables (KAFKA_*_OPTS) and a few others are not properties (see below).
#   With no property variable at all, a single node on localhost:9092/9093 (as the official
#   image does without configuration).
# * CLUSTER_ID formats the log and metadata folders that are not formatted yet (first start
#   on an empty volume); a formatted folder is left alone.
# * kafka.Kafka runs in the foreground as PID 1 (SIGTERM: a controlled shutdown).
#
# The generated files go under KAFKA_RUN_DIR (/tmp/kafka): /tmp is an emptyDir in the chart,
# so the root filesystem may be read-only. Arguments, if any, run instead (`kafka-run id`).
set -euo pipefail

[ $# -eq 0 ] || exec "$@"

run_dir="${KAFKA_RUN_DIR:-/tmp/kafka}"
libs=/opt/kafka/libs
mkdir -p "$run_dir"
props="$run_dir/server.properties"

# KAFKA_FOO__BAR___BAZ -> foo_bar-baz (placeholders keep `___` and `__` out of the `_` rule)
to_property() {
  local key="${1#KAFKA_}"
  key="${key,,}"
  key="${key//___/@DASH@}"
  key="${key//__/@UNDERSCORE@}"
  key="${key//_/.}"
  key="${key//@DASH@/-}"
  printf '%s' "${key//@UNDERSCORE@/_}"
}

: >"$props.tmp"
for name in $(compgen -e | LC_ALL=C sort); do
  case "$name" in
    # the launcher's and the JVM's settings, not broker properties
    KAFKA_*_OPTS | KAFKA_OPTS | KAFKA_VERSION | KAFKA_HOME | KAFKA_RUN_DIR) ;;
    KAFKA_LOG4J_* | KAFKA_JMX_* | KAFKA_TOOLS_* | KAFKA_GC_* | KAFKA_DEBUG) ;;
    # Kubernetes' service links for a Service named `kafka` (KAFKA_PORT=tcp://..., ...):
    # no broker property starts with `port` or `service.`
    KAFKA_PORT | KAFKA_PORT_[0-9]* | KAFKA_SERVICE_*) ;;
    KAFKA_*) printf '%s=%s\n' "$(to_property "$name")" "${!name}" >>"$props.tmp" ;;
  esac
done
if [ ! -s "$props.tmp" ]; then
  echo "kafka-run: no KAFKA_* property variables: a single node on localhost:9092 (controller :9093)" >&2
  cat >"$props.tmp" <<'PROPS'
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://localhost:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.quorum.voters=1@localhost:9093
log.dirs=/var/lib/kafka/data/logs
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
fi
mv "$props.tmp" "$props"

log4j_opts="${KAFKA_LOG4J_OPTS:--Dlog4j.configuration=file:/opt/kafka/config/log4j.properties}"
# the defaults of Kafka's own kafka-server-start.sh / kafka-run-class.sh
heap_opts="${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}"
perf_opts="${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"

property() { sed -n "s/^$1=//p" "$props" | tail -n 1; }

# Format what is not formatted yet: every log folder and the metadata folder need a
# meta.properties carrying the same cluster id.
dirs="$(property log.dirs)"
dirs="${dirs:-$(property log.dir)}"
dirs="${dirs:-/tmp/kafka-logs}"
meta_dir="$(property metadata.log.dir)"
unformatted=0
for dir in ${dirs//,/ } $meta_dir; do
  [ -f "$dir/meta.properties" ] || unformatted=1
done
if [ "$unformatted" = 1 ]; then
  if [ -z "${CLUSTER_ID:-}" ]; then
    CLUSTER_ID="$(java -Xmx64m -cp "$libs/*" $log4j_opts kafka.tools.StorageTool random-uuid)"
    echo "kafka-run: CLUSTER_ID is not set: formatting with a new random id $CLUSTER_ID" >&2
  fi
  echo "kafka-run: formatting ${dirs}${meta_dir:+,$meta_dir} with cluster id $CLUSTER_ID" >&2
  # shellcheck disable=SC2086 # the option strings are lists of words
  java -Xmx256m -cp "$libs/*" $log4j_opts kafka.tools.StorageTool format \
    --cluster-id="$CLUSTER_ID" --config "$props" --ignore-formatted
fi

# shellcheck disable=SC2086 # the option strings are lists of words
exec java $heap_opts $perf_opts $log4j_opts ${KAFKA_OPTS:-} -cp "$libs/*" kafka.Kafka "$props"
