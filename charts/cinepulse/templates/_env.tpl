{{/* ---------------------------------------------------------------- connections and env

Every cinepulse.env.* helper renders a list of env entries as YAML (built as data, rendered
with toYaml; "[]" when empty); read it back as data with fromYamlArray and join the lists
with concat:
  {{- $env := concat (include "cinepulse.env.postgres" $ | fromYamlArray) (list (dict "name" "X" "value" "y")) }}
Values are strings (toString): an env value of a number or a boolean would be refused. */}}

{{- define "cinepulse.kafka.bootstrap" -}}
{{- if .Values.kafka.enabled -}}
{{ include "cinepulse.component.fullname" (dict "ctx" . "component" "kafka") }}:9092
{{- else -}}
{{ required "externalKafka.bootstrapServers is required when kafka.enabled is false" .Values.externalKafka.bootstrapServers }}
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

{{/* An env entry read from a Secret's key; (list "NAME" <secret> <key> [optional]) */}}
{{- define "cinepulse.env.fromSecret" -}}
{{- $ref := dict "name" (index . 1) "key" (index . 2) }}
{{- if gt (len .) 3 }}{{ $_ := set $ref "optional" (index . 3) }}{{ end }}
{{- toYaml (dict "name" (index . 0) "valueFrom" (dict "secretKeyRef" $ref)) }}
{{- end }}

{{/* env of the common settings (environment, logs) */}}
{{- define "cinepulse.env.common" -}}
{{- toYaml (list
      (dict "name" "CINEPULSE_ENVIRONMENT" "value" (toString .Values.environment))
      (dict "name" "CINEPULSE_LOG_LEVEL" "value" (toString .Values.logLevel))) }}
{{- end }}

{{/* env of the Kafka block */}}
{{- define "cinepulse.env.kafka" -}}
{{- $env := list (dict "name" "CINEPULSE_KAFKA__BOOTSTRAP_SERVERS" "value" (include "cinepulse.kafka.bootstrap" .)) }}
{{- if not .Values.kafka.enabled }}
{{- $ext := .Values.externalKafka }}
{{- $env = append $env (dict "name" "CINEPULSE_KAFKA__SECURITY_PROTOCOL" "value" (toString $ext.securityProtocol)) }}
{{- if $ext.saslMechanism }}
{{- $secret := required "externalKafka.existingSecret is required with SASL" $ext.existingSecret }}
{{- $env = append $env (dict "name" "CINEPULSE_KAFKA__SASL_MECHANISM" "value" (toString $ext.saslMechanism)) }}
{{- $env = append $env (include "cinepulse.env.fromSecret" (list "CINEPULSE_KAFKA__SASL_USERNAME" $secret "username") | fromYaml) }}
{{- $env = append $env (include "cinepulse.env.fromSecret" (list "CINEPULSE_KAFKA__SASL_PASSWORD" $secret "password") | fromYaml) }}
{{- end }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/* env of the PostgreSQL block: the DSN from the generated Secret (bundled) or the
     operator's (external); the password never appears in a pod spec */}}
{{- define "cinepulse.env.postgres" -}}
{{- $key := .Values.postgresql.enabled | ternary "dsn" .Values.externalPostgresql.dsnKey }}
{{- toYaml (list (include "cinepulse.env.fromSecret" (list "CINEPULSE_POSTGRES__DSN" (include "cinepulse.postgresql.secretName" .) $key) | fromYaml)) }}
{{- end }}

{{/* env of the PostgreSQL block for one service, (dict "ctx" $ "service" "api"): the DSN
     of its own login (cinepulse_<service>_login, migration 0012's grants only) from the
     logins Secret (the operator's postgresqlLogins.existingSecret, or the one generated when
     the chart generates PostgreSQL's credentials); otherwise the owner's DSN, as
     cinepulse.env.postgres (security.md) */}}
{{- define "cinepulse.env.postgresFor" -}}
{{- if include "cinepulse.postgresql.logins" .ctx }}
{{- toYaml (list (include "cinepulse.env.fromSecret" (list "CINEPULSE_POSTGRES__DSN" (include "cinepulse.postgresql.loginsSecretName" .ctx) (printf "%s-dsn" .service)) | fromYaml)) }}
{{- else }}
{{- include "cinepulse.env.postgres" .ctx }}
{{- end }}
{{- end }}

{{/* env of the MongoDB block */}}
{{- define "cinepulse.env.mongo" -}}
{{- include "cinepulse.env.mongoFor" (dict "ctx" . "service" "") }}
{{- end }}

{{/* env of the MongoDB block for one service, (dict "ctx" $ "service" "archiver"): with an
     external MongoDB and externalMongodb.usersSecret, the URL of the service's own user
     (key <service>-url); otherwise the one URL. (The bundled FerretDB 1.x cannot enforce a
     user's roles: security.md#mongodb-users.) */}}
{{- define "cinepulse.env.mongoFor" -}}
{{- $ctx := .ctx }}
{{- $secret := include "cinepulse.mongodb.secretName" $ctx }}
{{- $key := $ctx.Values.mongodb.enabled | ternary "url" $ctx.Values.externalMongodb.urlKey }}
{{- if and .service (not $ctx.Values.mongodb.enabled) $ctx.Values.externalMongodb.usersSecret }}
{{- $secret = $ctx.Values.externalMongodb.usersSecret }}
{{- $key = printf "%s-url" .service }}
{{- end }}
{{- $env := list (include "cinepulse.env.fromSecret" (list "CINEPULSE_MONGO__URL" $secret $key) | fromYaml) }}
{{- if not $ctx.Values.mongodb.enabled }}
{{- $env = append $env (dict "name" "CINEPULSE_MONGO__DATABASE" "value" (toString $ctx.Values.externalMongodb.database)) }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/* env of the batch jobs (Pushgateway) */}}
{{- define "cinepulse.env.jobs" -}}
{{- $env := list }}
{{- with include "cinepulse.pushgatewayUrl" . }}
{{- $env = append $env (dict "name" "CINEPULSE_PUSHGATEWAY_URL" "value" .) }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/*
Who may read per-user data (CINEPULSE_AUTH__*), the same for the api and the recommender:
the api's keys Secret (api.apiKeysSecret, mounted), public aggregates, roles and the user
token secret (api.auth). Appends to the env list of a workload dict (as cinepulse.deployment
takes it) and sets its volumes and volumeMounts:
  {{- $_ := include "cinepulse.apiAuth" $c }}
*/}}
{{- define "cinepulse.apiAuth" -}}
{{- $api := .ctx.Values.api }}
{{- $env := default (list) .env }}
{{- if $api.apiKeysSecret }}
{{- $env = append $env (dict "name" "CINEPULSE_AUTH__KEYS_PATH" "value" "/var/run/secrets/cinepulse/api-keys") }}
{{- $_ := set . "volumes" (list (dict "name" "api-keys" "secret" (dict "secretName" $api.apiKeysSecret))) }}
{{- $_ := set . "volumeMounts" (list (dict "name" "api-keys" "mountPath" "/var/run/secrets/cinepulse/api-keys" "readOnly" true)) }}
{{- end }}
{{- $env = append $env (dict "name" "CINEPULSE_AUTH__PUBLIC_AGGREGATES" "value" (toString $api.auth.publicAggregates)) }}
{{- with $api.auth.roles }}
{{- $env = append $env (dict "name" "CINEPULSE_AUTH__ROLES" "value" (toJson .)) }}
{{- end }}
{{- with $api.auth.userTokenSecret }}
{{- $env = append $env (include "cinepulse.env.fromSecret" (list "CINEPULSE_AUTH__USER_TOKEN_SECRET" . "secret") | fromYaml) }}
{{- end }}
{{- $_ := set . "env" $env }}
{{- end }}

{{/* CINEPULSE_RATE_LIMIT__* of a keyed read service (the api, the recommender) from its
     rateLimit block (cinepulse_common.read_limits); the service validates the limits at start */}}
{{- define "cinepulse.env.readRateLimit" -}}
{{- $r := . -}}
- name: CINEPULSE_RATE_LIMIT__ENABLED
  value: {{ toString $r.enabled | quote }}
- name: CINEPULSE_RATE_LIMIT__PER_CLIENT
  value: {{ required "rateLimit.perClient: a limit such as 1200/minute, or unlimited" $r.perClient | toString | quote }}
- name: CINEPULSE_RATE_LIMIT__ANONYMOUS
  value: {{ required "rateLimit.anonymous: a limit such as 300/minute, or unlimited" $r.anonymous | toString | quote }}
{{- with $r.clients }}
- name: CINEPULSE_RATE_LIMIT__CLIENTS
  value: {{ toJson . | quote }}
{{- end }}
{{- end -}}
