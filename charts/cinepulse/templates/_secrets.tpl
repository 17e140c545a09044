{{/* ---------------------------------------------------------------- Secrets: names, generated passwords */}}

{{/* The Secret holding PostgreSQL's DSN: the generated one (bundled) or the operator's */}}
{{- define "cinepulse.postgresql.secretName" -}}
{{- if .Values.postgresql.enabled -}}
{{ default (include "cinepulse.component.fullname" (dict "ctx" . "component" "postgresql")) .Values.postgresql.existingSecret }}
{{- else -}}
{{ required "externalPostgresql.existingSecret is required when postgresql.enabled is false" .Values.externalPostgresql.existingSecret }}
{{- end }}
{{- end }}

{{/* The services' own PostgreSQL logins (migration 0012's roles), "true" or "": the
     operator's Secret (postgresqlLogins.existingSecret, any database), or generated, with
     their DSNs, when the chart runs PostgreSQL and generates its owner's password */}}
{{- define "cinepulse.postgresql.logins" -}}
{{- if or .Values.postgresqlLogins.existingSecret (include "cinepulse.postgresql.generatedLogins" .) -}}true{{- end }}
{{- end }}

{{/* "true" when the chart generates the logins' Secret itself */}}
{{- define "cinepulse.postgresql.generatedLogins" -}}
{{- if and .Values.postgresql.enabled (not .Values.postgresql.existingSecret) (not .Values.postgresqlLogins.existingSecret) -}}true{{- end }}
{{- end }}

{{/* "true" when the migrations Job makes the logins from the Secret's <service>-password
     keys: always for generated logins, for the operator's when postgresqlLogins.create */}}
{{- define "cinepulse.postgresql.createLogins" -}}
{{- if or (include "cinepulse.postgresql.generatedLogins" .) (and .Values.postgresqlLogins.existingSecret .Values.postgresqlLogins.create) -}}true{{- end }}
{{- end }}

{{- define "cinepulse.postgresql.loginsSecretName" -}}
{{ default (include "cinepulse.component.fullname" (dict "ctx" . "component" "postgresql-logins")) .Values.postgresqlLogins.existingSecret }}
{{- end }}

{{/* The services with a login: cinepulse_<service>_login, a member of cinepulse_<service>
     (cinepulse_migrations.logins.SERVICES) */}}
{{- define "cinepulse.postgresql.loginServices" -}}
api explorer recommender spark fallback fetcher quality
{{- end }}

{{/* The Secret holding MongoDB's URL: the generated one (bundled) or the operator's */}}
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
