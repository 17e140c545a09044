#!/bin/bash
# Entry point of cinepulse/spark-jobs, after Apache Spark's Kubernetes image entrypoint:
#   driver ARGS...    what the Spark operator's driver pod runs: spark-submit in client mode
#   executor          what an executor pod runs: the Kubernetes executor backend
#   COMMAND ARGS...   a program on PATH (spark-submit, java, bash, ...) runs as given
#   ARGS...           anything else goes to cinepulse-spark-jobs (stream, aggregate, --help)
set -eo pipefail

case "${1:-}" in
  driver)
    shift
    exec "$SPARK_HOME/bin/spark-submit" \
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:-0.0.0.0}" \
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS:-}" \
      --deploy-mode client "$@"
    ;;
  executor)
    shift
    # SPARK_JAVA_OPT_<n>: the executor's JVM options, in order (set by the driver)
    mapfile -t java_opts < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/^[^=]*=//')
    exec "$JAVA_HOME/bin/java" "${java_opts[@]}" \
      -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" \
      -cp "${SPARK_CLASSPATH:+$SPARK_CLASSPATH:}$SPARK_HOME/jars/*" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" \
      --cores "$SPARK_EXECUTOR_CORES" --app-id "$SPARK_APPLICATION_ID" \
      --hostname "$SPARK_EXECUTOR_POD_IP" --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" \
      --podName "${SPARK_EXECUTOR_POD_NAME:-}"
    ;;
esac
if [ "$#" -gt 0 ] && [[ "$1" != -* ]] && command -v "$1" >/dev/null; then
  exec "$@"
fi
exec cinepulse-spark-jobs "$@"
