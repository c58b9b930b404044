{{/*
Chart name, truncated to the 63 characters a Kubernetes name allows.
*/}}
{{- define "sitroom.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: <release>-sitroom, or the release name when it already contains it.
*/}}
{{- define "sitroom.fullname" -}}
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

{{- define "sitroom.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "sitroom.labels" -}}
helm.sh/chart: {{ include "sitroom.chart" . }}
{{ include "sitroom.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sitroom
{{- end }}

{{- define "sitroom.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sitroom.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Per-component labels. Call with (dict "root" $ "component" "worker").
*/}}
{{- define "sitroom.componentLabels" -}}
{{ include "sitroom.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "sitroom.componentSelectorLabels" -}}
{{ include "sitroom.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Labels of a Service the ServiceMonitor scrapes; sitroom.io/job becomes Prometheus' job label
(sitroom-worker, sitroom-api, ...), the names deploy/prometheus/alerts.yml uses.
Call with (dict "root" $ "component" "worker").
*/}}
{{- define "sitroom.metricsServiceLabels" -}}
{{ include "sitroom.componentLabels" . }}
sitroom.io/metrics: "true"
sitroom.io/job: {{ printf "sitroom-%s" .component }}
{{- end }}

{{- define "sitroom.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{- define "sitroom.clickhouseSecretName" -}}
{{- if .Values.clickhouse.existingSecret }}
{{- .Values.clickhouse.existingSecret }}
{{- else }}
{{- printf "%s-clickhouse" (include "sitroom.fullname" .) }}
{{- end }}
{{- end }}

{{- define "sitroom.clickhouseSecretKey" -}}
{{- if .Values.clickhouse.existingSecret }}
{{- .Values.clickhouse.existingSecretKey | default "dsn" }}
{{- else }}
{{- "dsn" }}
{{- end }}
{{- end }}

{{/*
Fail early on values the processes cannot start without.
*/}}
{{- define "sitroom.validateValues" -}}
{{- if not .Values.kafka.bootstrap }}
{{- fail "kafka.bootstrap is required: the Apache Kafka bootstrap servers (host:port[,host:port])" }}
{{- end }}
{{- if and (not .Values.clickhouse.dsn) (not .Values.clickhouse.existingSecret) }}
{{- fail "set clickhouse.dsn or clickhouse.existingSecret (ClickHouse HTTP DSN, e.g. http://user:password@clickhouse:8123/default)" }}
{{- end }}
{{- if and .Values.gtfsRt.enabled (not .Values.gtfsRt.url) }}
{{- fail "gtfsRt.url is required when gtfsRt.enabled is true" }}
{{- end }}
{{- end }}

{{/*
Environment of every long-running container: the shared ConfigMap plus the ClickHouse DSN.
*/}}
{{- define "sitroom.envFrom" -}}
- configMapRef:
    name: {{ include "sitroom.fullname" . }}
{{- end }}

{{- define "sitroom.clickhouseEnv" -}}
- name: SITROOM_CLICKHOUSE_DSN
  valueFrom:
    secretKeyRef:
      name: {{ include "sitroom.clickhouseSecretName" . }}
      key: {{ include "sitroom.clickhouseSecretKey" . }}
{{- end }}

{{/*
Writable paths under a read-only root filesystem: /tmp and the data dir (also the working dir).
*/}}
{{- define "sitroom.volumes" -}}
- name: tmp
  emptyDir: {}
- name: data
  emptyDir: {}
{{- end }}

{{- define "sitroom.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/sitroom
{{- end }}

{{/*
Pod annotations: config checksums (roll pods on change) and user annotations.
*/}}
{{- define "sitroom.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod-level scheduling and security settings shared by every workload.
*/}}
{{- define "sitroom.podSpecCommon" -}}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
