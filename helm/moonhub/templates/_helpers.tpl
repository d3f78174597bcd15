{{/* Every name the chart makes, in one place. */}}
{{- define "moonhub.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- define "moonhub.hub" -}}{{ include "moonhub.fullname" . }}-hub{{- end -}}
{{- define "moonhub.proxy" -}}{{ include "moonhub.fullname" . }}-proxy{{- end -}}
{{- define "moonhub.proxyPublic" -}}{{ include "moonhub.fullname" . }}-proxy-public{{- end -}}
{{- define "moonhub.proxyApi" -}}{{ include "moonhub.fullname" . }}-proxy-api{{- end -}}
{{- define "moonhub.jobs" -}}{{ include "moonhub.fullname" . }}-jobs{{- end -}}
{{- define "moonhub.secret" -}}{{ include "moonhub.fullname" . }}-secret{{- end -}}
{{- define "moonhub.config" -}}{{ include "moonhub.fullname" . }}-config{{- end -}}
{{- define "moonhub.catalog" -}}{{ include "moonhub.fullname" . }}-catalog{{- end -}}
{{- define "moonhub.prePuller" -}}{{ include "moonhub.fullname" . }}-pre-puller{{- end -}}
{{- define "moonhub.buildsNamespace" -}}{{ .Values.builds.namespace | default (printf "%s-builds" .Release.Namespace) }}{{- end -}}
{{- define "moonhub.userNamespace" -}}{{ .Values.userNamespace.name | default (printf "%s-users" .Release.Namespace) }}{{- end -}}
{{- define "moonhub.hubImage" -}}{{ .Values.images.hub.repository }}:{{ .Values.images.hub.tag }}{{- end -}}

{{- define "moonhub.labels" -}}
app.kubernetes.io/name: moonhub
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* selector labels of one component: include "moonhub.selector" (list $ "hub") */}}
{{- define "moonhub.selector" -}}
app.kubernetes.io/name: moonhub
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* a secret kept across upgrades: the given value, else the cluster's, else a new random
one ($length characters; 0: 64 hex digits) */}}
{{- define "moonhub.keep" -}}
{{- $ctx := index . 0 -}}{{- $key := index . 1 -}}{{- $given := index . 2 -}}{{- $length := index . 3 -}}
{{- if $given -}}{{ $given }}{{- else -}}
{{- $old := lookup "v1" "Secret" $ctx.Release.Namespace (include "moonhub.secret" $ctx) -}}
{{- if and $old $old.data (hasKey $old.data $key) -}}{{ index $old.data $key | b64dec }}
{{- else if eq (int $length) 0 -}}{{ randAlphaNum 64 | sha256sum }}
{{- else -}}{{ randAlphaNum $length }}{{- end -}}
{{- end -}}
{{- end -}}

{{/* the restricted security context of every MoonHub container */}}
{{- define "moonhub.security" -}}
securityContext:
  allowPrivilegeEscalation: false
  capabilities: {drop: [ALL]}
  runAsNonRoot: true
  runAsUser: 1000
  seccompProfile: {type: RuntimeDefault}
{{- end -}}



{{- /* the public origin of a subdomain under publicUrl: (list . "jobs--service") -> http://jobs--service.localhost:8000 */ -}}
{{- define "moonhub.subdomainOrigin" -}}
{{- $u := urlParse (index . 0).Values.hub.publicUrl -}}
{{- printf "%s://%s.%s" $u.scheme (index . 1) $u.host -}}
{{- end -}}

{{- /* the jobs database: SQLite on its volume, or the URL in the operator's Secret (PostgreSQL) */ -}}
{{- define "moonhub.jobsDatabase" -}}
{{- if .Values.jobs.databaseSecret -}}
- {name: MOONHUB_JOBS_DB, valueFrom: {secretKeyRef: {name: {{ .Values.jobs.databaseSecret | quote }}, key: url}}}
{{- else -}}
- {name: MOONHUB_JOBS_DB, value: sqlite:////srv/jobs-db/jobs.sqlite}
{{- end -}}
{{- end }}

{{/* the Secret holding Prometheus's scraper token (monitoring.scraperTokenSecret, else the chart's) */}}
{{- define "moonhub.scraperSecret" -}}
{{- .Values.monitoring.scraperTokenSecret | default (printf "%s-metrics-scraper" (include "moonhub.fullname" .)) -}}
{{- end -}}
