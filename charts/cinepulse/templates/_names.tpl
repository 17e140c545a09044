{{/* ---------------------------------------------------------------- names, labels, images

The helpers are split by concern: _names.tpl (names, labels, image references), _env.tpl
(connection addresses and the env lists of the services and jobs), _secrets.tpl (Secret
names, generated and kept passwords), _workload.tpl (the objects every component is made
of: Deployment, Service, ServiceAccount, ServiceMonitor, HPA, PDB, a batch job's pod spec,
a StatefulSet's headless Service and volume claims) and _spark.tpl (the Spark jobs). */}}

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

{{/* a Cinepulse image; call with (dict "ctx" $ "name" "api") */}}
{{- define "cinepulse.image" -}}
{{- $img := .ctx.Values.image }}
{{- $repo := printf "%s/%s" $img.repositoryPrefix .name }}
{{- if $img.registry }}{{ $repo = printf "%s/%s" $img.registry $repo }}{{ end }}
{{- printf "%s:%s" $repo (default .ctx.Chart.AppVersion $img.tag) }}
{{- end }}
