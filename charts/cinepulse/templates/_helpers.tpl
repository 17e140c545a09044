{{/* ---------------------------------------------------------------- names and labels */}}

{{- define "cinepulse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cinepulse.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* <fullname>-<component>; call with (dict "ctx" $ "component" "api") */}}
{{- define "cinepulse.component.fullname" -}}
{{- printf "%s-%s" (include "cinepulse.fullname" .ctx) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cinepulse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cinepulse.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "cinepulse.labels" -}}
{{ include "cinepulse.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: cinepulse
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- images */}}

{{/* a Cinepulse image; call with (dict "ctx" $ "name" "api") */}}
{{- define "cinepulse.image" -}}
{{- $img := .ctx.Values.image }}
{{- $repo := printf "%s/%s" $img.repositoryPrefix .name }}
{{- if $img.registry }}{{ $repo = printf "%s/%s" $img.registry $repo }}{{ end }}
{{- printf "%s:%s" $repo (default .ctx.Chart.AppVersion $img.tag) }}
{{- end }}

{{/* ---------------------------------------------------------------- security */}}

{{- define "cinepulse.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "cinepulse.containerSecurityContext" -}}
{{ toYaml .Values.containerSecurityContext }}
{{- end }}

{{/* ---------------------------------------------------------------- connections */}}

{{- define "cinepulse.kafka.bootstrap" -}}
{{- if .Values.kafka.enabled -}}
{{ include "cinepulse.component.fullname" (dict "ctx" . "component" "kafka") }}:9092
{{- else -}}
{{ required "externalKafka.bootstrapServers is required when kafka.enabled is false" .Values.externalKafka.bootstrapServers }}
{{- end }}
{{- end }}

{{- define "cinepulse.postgresql.secretName" -}}
{{- if .Values.postgresql.enabled -}}
{{ default (include "cinepulse.component.fullname" (dict "ctx" . "component" "postgresql")) .Values.postgresql.existingSecret }}
{{- else -}}
{{ required "externalPostgresql.existingSecret is required when postgresql.enabled is false" .Values.externalPostgresql.existingSecret }}
{{- end }}
{{- end }}

{{- define "cinepulse.mongodb.secretName" -}}
{{- if .Values.mongodb.enabled -}}
{{ default (include "cinepulse.component.fullname" (dict "ctx" . "component" "mongodb")) .Values.mongodb.existingSecret }}
{{- else -}}
{{ required "externalMongodb.existingSecret is required when mongodb.enabled is false" .Values.externalMongodb.existingSecret }}
{{- end }}
{{- end }}

{{- define "cinepulse.metabase.secretName" -}}
{{ default (include "cinepulse.component.fullname" (dict "ctx" . "component" "metabase")) .Values.metabase.existingSecret }}
{{- end }}

{{/* env of the common settings (environment, logs) */}}
{{- define "cinepulse.env.common" -}}
- name: CINEPULSE_ENVIRONMENT
  value: {{ .Values.environment | quote }}
- name: CINEPULSE_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end }}

{{/* env of the Kafka block */}}
{{- define "cinepulse.env.kafka" }}
- name: CINEPULSE_KAFKA__BOOTSTRAP_SERVERS
  value: {{ include "cinepulse.kafka.bootstrap" . | quote }}
{{- if not .Values.kafka.enabled }}
- name: CINEPULSE_KAFKA__SECURITY_PROTOCOL
  value: {{ .Values.externalKafka.securityProtocol | quote }}
{{- if .Values.externalKafka.saslMechanism }}
- name: CINEPULSE_KAFKA__SASL_MECHANISM
  value: {{ .Values.externalKafka.saslMechanism | quote }}
- name: CINEPULSE_KAFKA__SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ required "externalKafka.existingSecret is required with SASL" .Values.externalKafka.existingSecret }}
      key: username
- name: CINEPULSE_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalKafka.existingSecret }}
      key: password
{{- end }}
{{- end }}
{{- end }}

{{/* env of the PostgreSQL block: the DSN from the generated Secret (bundled) or the
     operator's (external); the password never appears in a pod spec */}}
{{- define "cinepulse.env.postgres" }}
- name: CINEPULSE_POSTGRES__DSN
  valueFrom:
    secretKeyRef:
      name: {{ include "cinepulse.postgresql.secretName" . }}
      key: {{ .Values.postgresql.enabled | ternary "dsn" .Values.externalPostgresql.dsnKey }}
{{- end }}

{{/* env of the MongoDB block */}}
{{- define "cinepulse.env.mongo" }}
- name: CINEPULSE_MONGO__URL
  valueFrom:
    secretKeyRef:
      name: {{ include "cinepulse.mongodb.secretName" . }}
      key: {{ .Values.mongodb.enabled | ternary "url" .Values.externalMongodb.urlKey }}
{{- if not .Values.mongodb.enabled }}
- name: CINEPULSE_MONGO__DATABASE
  value: {{ .Values.externalMongodb.database | quote }}
{{- end }}
{{- end }}

{{/* The Pushgateway the batch jobs push to: jobs.pushgatewayUrl when set, else this
     release's own (pushgateway.enabled), else none ("") */}}
{{- define "cinepulse.pushgatewayUrl" -}}
{{- if .Values.jobs.pushgatewayUrl -}}
{{ .Values.jobs.pushgatewayUrl }}
{{- else if .Values.pushgateway.enabled -}}
http://{{ include "cinepulse.component.fullname" (dict "ctx" . "component" "pushgateway") }}:{{ .Values.pushgateway.port }}
{{- end }}
{{- end }}

{{/* env of the batch jobs (Pushgateway) */}}
{{- define "cinepulse.env.jobs" -}}
{{- with include "cinepulse.pushgatewayUrl" . }}
- name: CINEPULSE_PUSHGATEWAY_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Who may read per-user data (CINEPULSE_AUTH__*), the same for the api and the recommender:
the api's keys Secret (api.apiKeysSecret, mounted), public aggregates, roles and the user
token secret (api.auth). Appends to the env of a workload dict (as cinepulse.deployment
takes it) and sets its volumes and volumeMounts:
  {{- $_ := include "cinepulse.apiAuth" $c }}
*/}}
{{- define "cinepulse.apiAuth" -}}
{{- $api := .ctx.Values.api }}
{{- $env := default "" .env }}
{{- if $api.apiKeysSecret }}
{{- $env = printf "%s\n- name: CINEPULSE_AUTH__KEYS_PATH\n  value: /var/run/secrets/cinepulse/api-keys" $env }}
{{- $_ := set . "volumes" (printf "- name: api-keys\n  secret:\n    secretName: %s" $api.apiKeysSecret) }}
{{- $_ := set . "volumeMounts" "- name: api-keys\n  mountPath: /var/run/secrets/cinepulse/api-keys\n  readOnly: true" }}
{{- end }}
{{- $env = printf "%s\n- name: CINEPULSE_AUTH__PUBLIC_AGGREGATES\n  value: %q" $env (toString $api.auth.publicAggregates) }}
{{- with $api.auth.roles }}
{{- $env = printf "%s\n- name: CINEPULSE_AUTH__ROLES\n  value: %s" $env (toJson . | quote) }}
{{- end }}
{{- with $api.auth.userTokenSecret }}
{{- $env = printf "%s\n- name: CINEPULSE_AUTH__USER_TOKEN_SECRET\n  valueFrom:\n    secretKeyRef:\n      name: %s\n      key: secret" $env . }}
{{- end }}
{{- $_ := set . "env" $env }}
{{- end }}

{{/* ---------------------------------------------------------------- workloads */}}

{{/* probes of an HTTP service on its named port "http" */}}
{{- define "cinepulse.probes" -}}
startupProbe:
  httpGet: {path: {{ default "/healthz" .healthPath }}, port: http}
  periodSeconds: 5
  failureThreshold: 30
livenessProbe:
  httpGet: {path: {{ default "/healthz" .healthPath }}, port: http}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: {{ default "/readyz" .readyPath }}, port: http}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end }}

{{/*
A Deployment of a Cinepulse HTTP service. Call with
(dict "ctx" $ "component" "api" "values" .Values.api "args" (list ...) "env" "<yaml list>"
      "volumes" "<yaml>" "volumeMounts" "<yaml>" "checksum" "<text>" "image" "<name>"
      "healthPath" "/healthz" "readyPath" "/readyz")
*/}}
{{- define "cinepulse.deployment" -}}
{{- $ctx := .ctx }}
{{- $v := .values }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "cinepulse.component.fullname" . }}
  labels:
    {{- include "cinepulse.labels" . | nindent 4 }}
spec:
  {{- if not (and $v.autoscaling $v.autoscaling.enabled) }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "cinepulse.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "cinepulse.labels" . | nindent 8 }}
      annotations:
        # restart on a configuration change
        checksum/config: {{ print (toJson $v) (default "" .checksum) | sha256sum }}
    spec:
      serviceAccountName: {{ include "cinepulse.component.fullname" . }}
      automountServiceAccountToken: {{ $ctx.Values.automountServiceAccountToken }}
      {{- with $ctx.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- range . }}
        - name: {{ . }}
        {{- end }}
      {{- end }}
      securityContext:
        {{- include "cinepulse.podSecurityContext" $ctx | nindent 8 }}
      {{- with .initContainers }}
      initContainers:
        {{- . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "cinepulse.image" (dict "ctx" $ctx "name" (default .component .image)) }}
          imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
          {{- with .args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            - name: http
              containerPort: {{ $v.port }}
              protocol: TCP
          env:
            {{- include "cinepulse.env.common" $ctx | nindent 12 }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- include "cinepulse.probes" . | nindent 10 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- include "cinepulse.containerSecurityContext" $ctx | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- with .volumeMounts }}
            {{- . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 256Mi
        {{- with .volumes }}
        {{- . | nindent 8 }}
        {{- end }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "cinepulse.selectorLabels" . | nindent 14 }}
{{- end }}

{{/* The ClusterIP Service of a component's "http" port; call like cinepulse.deployment */}}
{{- define "cinepulse.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "cinepulse.component.fullname" . }}
  labels:
    {{- include "cinepulse.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "cinepulse.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .values.port }}
      targetPort: http
      protocol: TCP
{{- end }}

{{/* The ServiceAccount of a component (no token unless asked) */}}
{{- define "cinepulse.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "cinepulse.component.fullname" . }}
  labels:
    {{- include "cinepulse.labels" . | nindent 4 }}
automountServiceAccountToken: {{ default .ctx.Values.automountServiceAccountToken .automount }}
{{- end }}

{{/* The ServiceMonitor of a component's /metrics on its "http" port */}}
{{- define "cinepulse.serviceMonitor" -}}
{{- if .ctx.Values.monitoring.serviceMonitors.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "cinepulse.component.fullname" . }}
  labels:
    {{- include "cinepulse.labels" . | nindent 4 }}
    {{- with .ctx.Values.monitoring.serviceMonitors.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "cinepulse.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: {{ default "http" .port }}
      path: /metrics
      interval: {{ .ctx.Values.monitoring.serviceMonitors.interval }}
{{- end }}
{{- end }}

{{/* A HorizontalPodAutoscaler on CPU */}}
{{- define "cinepulse.hpa" -}}
{{- if .values.autoscaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "cinepulse.component.fullname" . }}
  labels:
    {{- include "cinepulse.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "cinepulse.component.fullname" . }}
  minReplicas: {{ .values.autoscaling.minReplicas }}
  maxReplicas: {{ .values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .values.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end }}

{{/* A PodDisruptionBudget */}}
{{- define "cinepulse.pdb" -}}
{{- if .values.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "cinepulse.component.fullname" . }}
  labels:
    {{- include "cinepulse.labels" . | nindent 4 }}
spec:
  minAvailable: {{ .values.pdb.minAvailable }}
  selector:
    matchLabels:
      {{- include "cinepulse.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{/* A generated password kept across upgrades (read back with lookup; on `helm template`
     a fresh one is drawn); the raw value. (dict "ctx" $ "name" <Secret> ["key" "password"]
     ["digits" true: 28 letters or digits then 4 digits, for checks wanting a digit]) */}}
{{- define "cinepulse.keptPassword" -}}
{{- $key := default "password" .key }}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name }}
{{- if and $existing $existing.data (hasKey $existing.data $key) }}
{{- index $existing.data $key | b64dec }}
{{- else if .digits }}
{{- printf "%s%s" (randAlphaNum 28) (randNumeric 4) }}
{{- else }}
{{- randAlphaNum 32 }}
{{- end }}
{{- end }}

{{/*
The pod spec of a batch job (CronJob, hook Job). Call with
(dict "ctx" $ "component" "tmdb-fetcher" "image" "tmdb-fetcher" "args" (list ...) "env" "<yaml>"
      "resources" <map> "volumes" "<yaml>" "volumeMounts" "<yaml>")
*/}}
{{- define "cinepulse.jobPodSpec" -}}
{{- $ctx := .ctx }}
serviceAccountName: {{ include "cinepulse.fullname" $ctx }}-jobs
automountServiceAccountToken: false
restartPolicy: Never
{{- with $ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- include "cinepulse.podSecurityContext" $ctx | nindent 2 }}
containers:
  - name: {{ .component }}
    image: {{ include "cinepulse.image" (dict "ctx" $ctx "name" (default .component .image)) }}
    imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
    {{- with .args }}
    args:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    env:
      {{- include "cinepulse.env.common" $ctx | nindent 6 }}
      {{- with .env }}
      {{- . | nindent 6 }}
      {{- end }}
    resources:
      {{- toYaml .resources | nindent 6 }}
    securityContext:
      {{- include "cinepulse.containerSecurityContext" $ctx | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- with .volumeMounts }}
      {{- . | nindent 6 }}
      {{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 1Gi
  {{- with .volumes }}
  {{- . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* The Spark jobs' helpers (cinepulse.spark.app, cinepulse.sparkSpec, ...): _spark.tpl */}}

{{/* ---------------------------------------------------------------- bundled dependencies */}}

{{/* The headless Service of a StatefulSet; (dict "c" <component dict> "port" N "portName" "x") */}}
{{- define "cinepulse.headlessService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "cinepulse.component.fullname" .c }}
  labels:
    {{- include "cinepulse.labels" .c | nindent 4 }}
spec:
  clusterIP: None
  selector:
    {{- include "cinepulse.selectorLabels" .c | nindent 4 }}
  ports:
    - name: {{ .portName }}
      port: {{ .port }}
      targetPort: {{ .portName }}
{{- end }}

{{/* A generated password Secret, kept across upgrades and uninstalls, with the connection
     string built from the same password under `uriKey` (one draw: both keys agree);
     (dict "c" <component dict> "name" <secret name> "uriKey" "dsn" "uri" "<printf format
     with one %s for the password>") */}}
{{- define "cinepulse.generatedSecret" -}}
{{- $password := include "cinepulse.keptPassword" (dict "ctx" .c.ctx "name" .name) }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ .name }}
  labels:
    {{- include "cinepulse.labels" .c | nindent 4 }}
  annotations:
    helm.sh/resource-policy: keep
type: Opaque
data:
  password: {{ $password | b64enc }}
  {{ .uriKey }}: {{ printf .uri $password | b64enc }}
{{- end }}

{{/* The data volume claim of a StatefulSet, from a dependency's values (storage, class) */}}
{{- define "cinepulse.volumeClaimTemplates" -}}
volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      {{- with .storageClassName }}
      storageClassName: {{ . }}
      {{- end }}
      resources:
        requests:
          storage: {{ .storage }}
{{- end }}
