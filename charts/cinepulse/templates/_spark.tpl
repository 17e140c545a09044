{{/* ---------------------------------------------------------------- Spark jobs

Each Spark job (the streaming job, the daily aggregates) is described ONCE, as data, by
cinepulse.spark.app; the two launchers render that same description:
  spark.launcher=operator  cinepulse.sparkSpec: a SparkApplication spec for the Spark operator
  spark.launcher=submit    cinepulse.spark.submitConf / submitArgs: `spark-submit --master
                           k8s://...` in client mode from a pod of the chart (the driver), its
                           executors from cinepulse.spark.executorPodTemplate
docs/operations/spark-on-kubernetes.md maps one onto the other. */}}

{{/* Where a client-mode driver finds the Kubernetes API server (spark.master = k8s://<this>) */}}
{{- define "cinepulse.spark.apiServer" -}}
https://kubernetes.default.svc:443
{{- end }}

{{/* Where the submit launcher mounts an executor pod template (from its ConfigMap) */}}
{{- define "cinepulse.spark.podTemplateDir" -}}
/opt/cinepulse/spark-pod-template
{{- end }}

{{/*
One Spark job as data (YAML: read it back with fromYaml). Call with
(dict "ctx" $ "job" "stream"|"aggregates"). Keys: component, name, serviceAccount, image,
imagePullPolicy, imagePullSecrets, mainApplicationFile, arguments, sparkConf, driver,
executor (the job's values), labels (both roles), driverLabels (the driver's extra ones),
metricsPort, env, volumes, volumeMounts (both roles).
*/}}
{{- define "cinepulse.spark.app" -}}
{{- $ctx := .ctx }}
{{- $v := index $ctx.Values.spark .job }}
{{- $stream := eq .job "stream" }}
{{- $c := dict "ctx" $ctx "component" (printf "spark-%s" .job) }}
{{- $ports := $ctx.Values.spark.ports }}
component: {{ $c.component }}
name: {{ include "cinepulse.component.fullname" $c }}
serviceAccount: {{ include "cinepulse.component.fullname" (dict "ctx" $ctx "component" "spark") }}
image: {{ include "cinepulse.image" (dict "ctx" $ctx "name" "spark-jobs") }}
imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
imagePullSecrets: {{ toJson $ctx.Values.imagePullSecrets }}
mainApplicationFile: local:///opt/cinepulse/spark_main.py
arguments: [{{ $stream | ternary "stream" "aggregate" }}]
sparkConf:
  spark.sql.session.timeZone: UTC
  spark.sql.streaming.stopGracefullyOnShutdown: "true"
  spark.ui.prometheus.enabled: "true"
  # fixed ports (the NetworkPolicy admits exactly these between the driver and executors)
  spark.driver.port: {{ $ports.driver | quote }}
  spark.blockManager.port: {{ $ports.blockManager | quote }}
  # the JVM heap plus this share for Python and off-heap memory (Spark's non-JVM default,
  # stated so both launchers size the pods alike)
  spark.driver.memoryOverheadFactor: "0.4"
  spark.executor.memoryOverheadFactor: "0.4"
driver: {{ toJson $v.driver }}
executor: {{ toJson $v.executor }}
labels:
  {{- include "cinepulse.labels" $c | nindent 2 }}
driverLabels:
  # the driver calls the Kubernetes API server (its executors)
  cinepulse.io/egress: outside
metricsPort: 9108
{{- $env := list
      (dict "name" "CINEPULSE_MASTER" "value" "")
      (dict "name" "CINEPULSE_METRICS_PORT" "value" "9108")
      (dict "name" "CINEPULSE_JARS_DIR" "value" "/opt/cinepulse/jars")
      (dict "name" "CINEPULSE_EMOTION_MODEL" "value" "/opt/cinepulse/models/emotion.joblib")
      (dict "name" "HOME" "value" "/tmp") }}
{{- $env = concat $env (include "cinepulse.env.common" $ctx | fromYamlArray) (include "cinepulse.env.postgresFor" (dict "ctx" $ctx "service" "spark") | fromYamlArray) }}
{{- if $stream }}
{{- $env = concat $env (include "cinepulse.env.kafka" $ctx | fromYamlArray) (list (dict "name" "CINEPULSE_CHECKPOINT_DIR" "value" "/checkpoints")) }}
{{- /* a data-loss stop is pushed there: its alert outlives the driver that exits on it */}}
{{- $env = concat $env (include "cinepulse.env.jobs" $ctx | fromYamlArray) }}
{{- end }}
env:
  {{- toYaml $env | nindent 2 }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 2Gi
  {{- if $stream }}
  - name: checkpoints
    persistentVolumeClaim:
      claimName: {{ include "cinepulse.component.fullname" $c }}-checkpoints
  {{- end }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  {{- if $stream }}
  - name: checkpoints
    mountPath: /checkpoints
  {{- end }}
{{- end }}

{{/*
The body of a SparkApplication spec (without restartPolicy), for the Spark operator.
Call with (dict "ctx" $ "app" <cinepulse.spark.app | fromYaml>)
*/}}
{{- define "cinepulse.sparkSpec" -}}
{{- $ctx := .ctx }}
{{- $app := .app }}
type: Python
pythonVersion: "3"
mode: cluster
image: {{ $app.image }}
imagePullPolicy: {{ $app.imagePullPolicy }}
{{- with $app.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
mainApplicationFile: {{ $app.mainApplicationFile }}
arguments:
  {{- toYaml $app.arguments | nindent 2 }}
sparkVersion: {{ $ctx.Values.spark.sparkVersion | quote }}
sparkConf:
  {{- toYaml $app.sparkConf | nindent 2 }}
volumes:
  {{- toYaml $app.volumes | nindent 2 }}
{{- range $role := list "driver" "executor" }}
{{ $role }}:
  {{- $r := index $app $role }}
  {{- if eq $role "executor" }}
  instances: {{ $r.instances }}
  {{- end }}
  cores: {{ $r.cores }}
  {{- with $r.coreRequest }}
  coreRequest: {{ . | quote }}
  {{- end }}
  memory: {{ $r.memory | quote }}
  {{- if eq $role "driver" }}
  serviceAccount: {{ $app.serviceAccount }}
  # /metrics of the driver (CINEPULSE_METRICS_PORT), scraped by the PodMonitor
  ports:
    - name: metrics
      containerPort: {{ $app.metricsPort }}
      protocol: TCP
  {{- end }}
  labels:
    {{- toYaml $app.labels | nindent 4 }}
    {{- if eq $role "driver" }}
    {{- toYaml $app.driverLabels | nindent 4 }}
    {{- end }}
  env:
    {{- toYaml $app.env | nindent 4 }}
  podSecurityContext:
    {{- include "cinepulse.podSecurityContext" $ctx | nindent 4 }}
  securityContext:
    {{- include "cinepulse.containerSecurityContext" $ctx | nindent 4 }}
  volumeMounts:
    {{- toYaml $app.volumeMounts | nindent 4 }}
{{- end }}
{{- end }}

{{/* A Spark memory string (k, m, g, t; no suffix: MiB, as Spark reads spark.*.memory) in MiB */}}
{{- define "cinepulse.spark.mebibytes" -}}
{{- $m := lower (toString .) }}
{{- $unit := regexFind "[kmgt]$" $m }}
{{- $n := trimSuffix $unit $m | int64 }}
{{- if eq $unit "k" }}{{ div $n 1024 }}
{{- else if eq $unit "g" }}{{ mul $n 1024 }}
{{- else if eq $unit "t" }}{{ mul $n 1048576 }}
{{- else }}{{ $n }}
{{- end }}
{{- end }}

{{/* The memory of a driver container as Spark sizes its pods: the heap plus
     max(384 MiB, heap x spark.driver.memoryOverheadFactor), e.g. "1433Mi" for 1g.
     (dict "app" <app>) */}}
{{- define "cinepulse.spark.driverPodMemory" -}}
{{- $heap := include "cinepulse.spark.mebibytes" .app.driver.memory | int64 }}
{{- $factor := index .app.sparkConf "spark.driver.memoryOverheadFactor" | float64 }}
{{- $overhead := max 384 (mulf $heap $factor | floor | int64) }}
{{- printf "%dMi" (add $heap $overhead) }}
{{- end }}

{{/* The CPU a role requests: its coreRequest, else its cores */}}
{{- define "cinepulse.spark.requestCores" -}}
{{- default (toString .cores) .coreRequest }}
{{- end }}

{{/*
The spark-submit configuration of a client-mode driver running in a pod of the chart, as a
map (YAML): the SparkApplication's fields in Spark's own names, plus what client mode needs.
$(SPARK_DRIVER_POD_NAME) and $(SPARK_DRIVER_POD_IP) are expanded by the kubelet from the
container's env (downward API). Call with (dict "ctx" $ "app" <app>)
*/}}
{{- define "cinepulse.spark.submitConf" -}}
{{- $ctx := .ctx }}
{{- $app := .app }}
{{- $conf := dict
      "spark.app.name" $app.name
      "spark.kubernetes.namespace" $ctx.Release.Namespace
      "spark.kubernetes.container.image" $app.image
      "spark.kubernetes.container.image.pullPolicy" $app.imagePullPolicy
      "spark.kubernetes.authenticate.caCertFile" "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
      "spark.kubernetes.driver.pod.name" "$(SPARK_DRIVER_POD_NAME)"
      "spark.driver.host" "$(SPARK_DRIVER_POD_IP)"
      "spark.driver.cores" (toString $app.driver.cores)
      "spark.driver.memory" (toString $app.driver.memory)
      "spark.executor.instances" (toString $app.executor.instances)
      "spark.executor.cores" (toString $app.executor.cores)
      "spark.executor.memory" (toString $app.executor.memory)
      "spark.kubernetes.executor.request.cores" (include "cinepulse.spark.requestCores" $app.executor)
      "spark.kubernetes.executor.podTemplateFile" (printf "%s/executor.yaml" (include "cinepulse.spark.podTemplateDir" .))
      "spark.kubernetes.executor.podTemplateContainerName" "executor" }}
{{- with $app.imagePullSecrets }}
{{- $_ := set $conf "spark.kubernetes.container.image.pullSecrets" (join "," .) }}
{{- end }}
{{- toYaml (merge $conf $app.sparkConf) }}
{{- end }}

{{/* The container args of a client-mode driver: the image's `driver` entrypoint (spark-submit
     --deploy-mode client), the master, every conf, the application and its arguments.
     (dict "ctx" $ "app" <app>) */}}
{{- define "cinepulse.spark.submitArgs" -}}
{{- $conf := include "cinepulse.spark.submitConf" . | fromYaml }}
- driver
- --master
- k8s://{{ include "cinepulse.spark.apiServer" . }}
{{- range $k := keys $conf | sortAlpha }}
- --conf
- {{ printf "%s=%s" $k (index $conf $k) | quote }}
{{- end }}
- {{ .app.mainApplicationFile }}
{{- range .app.arguments }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* The checksum of a client-mode driver's configuration (its spark-submit arguments and its
     executors' pod template): a change restarts the driver. (dict "ctx" $ "app" <app>) */}}
{{- define "cinepulse.spark.submitChecksum" -}}
{{- print (include "cinepulse.spark.submitArgs" .) (include "cinepulse.spark.executorPodTemplate" . | trim) | sha256sum }}
{{- end }}

{{/* The executor pod template of the submit launcher (Pod Security "restricted"): the job's
     labels, env, security contexts and volumes; Spark adds the image, command, resources and
     its own labels (spark-role: executor). (dict "ctx" $ "app" <app>) */}}
{{- define "cinepulse.spark.executorPodTemplate" -}}
{{- $ctx := .ctx }}
apiVersion: v1
kind: Pod
metadata:
  labels:
    {{- toYaml .app.labels | nindent 4 }}
spec:
  # executors never call the API server
  automountServiceAccountToken: false
  securityContext:
    {{- include "cinepulse.podSecurityContext" $ctx | nindent 4 }}
  containers:
    - name: executor
      # the executor fetches the application's jars and files into its working directory;
      # the image's WORKDIR is on the read-only root (found on the real node: "Unable to
      # create executor due to ./commons-pool2-2.13.1.jar: Read-only file system")
      workingDir: /tmp
      env:
        {{- toYaml .app.env | nindent 8 }}
      securityContext:
        {{- include "cinepulse.containerSecurityContext" $ctx | nindent 8 }}
      volumeMounts:
        {{- toYaml .app.volumeMounts | nindent 8 }}
        {{- include "cinepulse.spark.localDirMount" . | nindent 8 }}
  volumes:
    {{- toYaml .app.volumes | nindent 4 }}
    {{- include "cinepulse.spark.localDirVolume" . | nindent 4 }}
{{- end }}

{{/* Spark's scratch space (shuffle, spills) on an emptyDir: the root file system is read-only.
     Spark takes volumes named spark-local-dir-* as its local dirs. */}}
{{- define "cinepulse.spark.localDirMount" -}}
- name: spark-local-dir-1
  mountPath: /var/data/spark-local
{{- end }}
{{- define "cinepulse.spark.localDirVolume" -}}
- name: spark-local-dir-1
  emptyDir:
    sizeLimit: 2Gi
{{- end }}

{{/*
The pod of a client-mode driver (submit launcher): spark-submit runs in it and starts the
executors through the API server with the driver's ServiceAccount. Call with
(dict "ctx" $ "app" <app> "restartPolicy" "Never" (Job pods; none for a Deployment))
*/}}
{{- define "cinepulse.spark.driverPodSpec" -}}
{{- $ctx := .ctx }}
{{- $app := .app }}
{{- $ports := $ctx.Values.spark.ports }}
serviceAccountName: {{ $app.serviceAccount }}
# the driver manages its executor pods (the ServiceAccount's Role)
automountServiceAccountToken: true
{{- with .restartPolicy }}
restartPolicy: {{ . }}
{{- end }}
# spark.sql.streaming.stopGracefullyOnShutdown: let a micro-batch finish
terminationGracePeriodSeconds: 60
{{- with $app.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- include "cinepulse.podSecurityContext" $ctx | nindent 2 }}
containers:
  - name: driver
    image: {{ $app.image }}
    imagePullPolicy: {{ $app.imagePullPolicy }}
    args:
      {{- include "cinepulse.spark.submitArgs" . | nindent 6 }}
    ports:
      - name: metrics
        containerPort: {{ $app.metricsPort }}
        protocol: TCP
      - name: driver-rpc-port
        containerPort: {{ $ports.driver }}
        protocol: TCP
      - name: blockmanager
        containerPort: {{ $ports.blockManager }}
        protocol: TCP
    env:
      {{- toYaml $app.env | nindent 6 }}
      - name: SPARK_DRIVER_POD_NAME
        valueFrom:
          fieldRef: {fieldPath: metadata.name}
      - name: SPARK_DRIVER_POD_IP
        valueFrom:
          fieldRef: {fieldPath: status.podIP}
      # the image's entrypoint binds the driver to it (as in a cluster-mode driver pod)
      - name: SPARK_DRIVER_BIND_ADDRESS
        valueFrom:
          fieldRef: {fieldPath: status.podIP}
      - name: SPARK_LOCAL_DIRS
        value: /var/data/spark-local
    resources:
      {{- $memory := include "cinepulse.spark.driverPodMemory" . }}
      requests:
        cpu: {{ include "cinepulse.spark.requestCores" $app.driver | quote }}
        memory: {{ $memory }}
        ephemeral-storage: 64Mi
      limits:
        memory: {{ $memory }}
        ephemeral-storage: 5Gi
    securityContext:
      {{- include "cinepulse.containerSecurityContext" $ctx | nindent 6 }}
    volumeMounts:
      {{- toYaml $app.volumeMounts | nindent 6 }}
      {{- include "cinepulse.spark.localDirMount" . | nindent 6 }}
      - name: executor-pod-template
        mountPath: {{ include "cinepulse.spark.podTemplateDir" . }}
        readOnly: true
volumes:
  {{- toYaml $app.volumes | nindent 2 }}
  {{- include "cinepulse.spark.localDirVolume" . | nindent 2 }}
  - name: executor-pod-template
    configMap:
      name: {{ $app.name }}-executor
{{- end }}

{{/* The labels of a client-mode driver pod: the job's, the driver's, and spark-role: driver
     (the PodMonitor and the NetworkPolicy select it, as they select an operator's driver) */}}
{{- define "cinepulse.spark.driverPodLabels" -}}
{{ toYaml .app.labels }}
{{ toYaml .app.driverLabels }}
spark-role: driver
{{- end }}
