{{/* ---------------------------------------------------------------- workloads

The objects every component is made of; a component's template calls them with a dict
(dict "ctx" $ "component" "api" "values" .Values.api ...). */}}

{{/* ---------------------------------------------------------------- security */}}

{{- define "cinepulse.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "cinepulse.containerSecurityContext" -}}
{{ toYaml .Values.containerSecurityContext }}
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
(dict "ctx" $ "component" "api" "values" .Values.api "args" (list ...) "env" (list <entry>...)
      "volumes" (list ...) "volumeMounts" (list ...) "initContainers" (list ...)
      "checksum" "<text>" "image" "<name>" "healthPath" "/healthz" "readyPath" "/readyz"
      "podLabels" (dict ...))
The env is cinepulse.env.common's, then "env", then the component's extraEnv (values).
"podLabels": more labels of its pods (e.g. cinepulse.io/egress: outside), not selectors.
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
        {{- with .podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # restart on a configuration change (not on scaling: replicas, autoscaling and the
        # PDB leave the pods as they are)
        checksum/config: {{ print (toJson (omit $v "replicas" "autoscaling" "pdb")) (default "" .checksum) | sha256sum }}
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
        {{- toYaml . | nindent 8 }}
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
            {{- if $v.metricsPort }}
            {{- /* /metrics alone, so the NetworkPolicy admits Prometheus here only */}}
            - name: metrics
              containerPort: {{ $v.metricsPort }}
              protocol: TCP
            {{- end }}
          env:
            {{- $metricsEnv := list }}
            {{- if $v.metricsPort }}
            {{- $metricsEnv = list (dict "name" "CINEPULSE_METRICS_PORT" "value" (toString $v.metricsPort)) }}
            {{- end }}
            {{- $env := concat (include "cinepulse.env.common" $ctx | fromYamlArray) $metricsEnv (default (list) .env) (default (list) $v.extraEnv) }}
            {{- toYaml $env | nindent 12 }}
          {{- include "cinepulse.probes" . | nindent 10 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- include "cinepulse.containerSecurityContext" $ctx | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- with .volumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 256Mi
        {{- with .volumes }}
        {{- toYaml . | nindent 8 }}
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
    {{- if .values.metricsPort }}
    - name: metrics
      port: {{ .values.metricsPort }}
      targetPort: metrics
      protocol: TCP
    {{- end }}
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

{{/* The ServiceMonitor of a component's /metrics: on its "metrics" port when it has a
metricsPort, else on "port" (default "http") */}}
{{- define "cinepulse.serviceMonitor" -}}
{{- $port := default "http" .port }}
{{- if and .values .values.metricsPort }}
{{- $port = "metrics" }}
{{- end }}
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
    - port: {{ $port }}
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

{{/*
The pod spec of a batch job (CronJob, hook Job). Call with
(dict "ctx" $ "component" "tmdb-fetcher" "image" "tmdb-fetcher" "args" (list ...)
      "env" (list <entry>...) "resources" <map> "volumes" (list ...) "volumeMounts" (list ...))
The env is cinepulse.env.common's, then "env".
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
      {{- toYaml (concat (include "cinepulse.env.common" $ctx | fromYamlArray) (default (list) .env)) | nindent 6 }}
    resources:
      {{- toYaml .resources | nindent 6 }}
    securityContext:
      {{- include "cinepulse.containerSecurityContext" $ctx | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- with .volumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 1Gi
  {{- with .volumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

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
