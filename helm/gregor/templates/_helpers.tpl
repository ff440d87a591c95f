{{/* The chart's name, shortened to fit Kubernetes' 63-character limit. */}}
{{- define "gregor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every object: <release>-gregor unless overridden. */}}
{{- define "gregor.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gregor.broker.fullname" -}}
{{- printf "%s-broker" (include "gregor.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* Headless Service that gives each broker pod its DNS name. */}}
{{- define "gregor.broker.headless" -}}
{{- printf "%s-headless" (include "gregor.broker.fullname" .) -}}
{{- end -}}

{{- define "gregor.coordinator.fullname" -}}
{{- printf "%s-coordinator" (include "gregor.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "gregor.coordinator.headless" -}}
{{- printf "%s-headless" (include "gregor.coordinator.fullname" .) -}}
{{- end -}}

{{- define "gregor.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "gregor.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "gregor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels; call with (dict "ctx" $ "component" "broker"). */}}
{{- define "gregor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gregor.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* zookeeper.connect: every coordinator pod by its stable DNS name. */}}
{{- define "gregor.coordinator.connect" -}}
{{- $name := include "gregor.coordinator.fullname" . -}}
{{- $headless := include "gregor.coordinator.headless" . -}}
{{- $servers := list -}}
{{- range $i := until (int .Values.coordinator.replicas) -}}
{{- $servers = append $servers (printf "%s-%d.%s.%s.svc.%s:%d" $name $i $headless $.Release.Namespace $.Values.clusterDomain (int $.Values.coordinator.port)) -}}
{{- end -}}
{{- join "," $servers -}}
{{- end -}}

{{/* server.properties shared by every broker. */}}
{{- define "gregor.broker.properties" -}}
log.dirs=/var/lib/gregor
admin.listener=0.0.0.0:{{ .Values.broker.adminPort }}
{{- range $key, $value := .Values.broker.config }}
{{- /* YAML numbers arrive as floats: print 1073741824, not 1.073741824e+09. */}}
{{- if and (kindIs "float64" $value) (eq (float64 (int64 $value)) $value) }}
{{ $key }}={{ int64 $value }}
{{- else }}
{{ $key }}={{ $value }}
{{- end }}
{{- end }}
{{- end -}}
