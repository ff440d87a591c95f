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

{{/* The broker count: replicaCount, or broker.replicas (its older name). */}}
{{- define "gregor.broker.replicas" -}}
{{- $older := .Values.broker.replicas -}}
{{- $count := ternary .Values.replicaCount $older (kindIs "invalid" $older) -}}
{{- if lt (int $count) 1 -}}
{{- fail (printf "replicaCount: %v; at least one broker" $count) -}}
{{- end -}}
{{- int $count -}}
{{- end -}}

{{/* The coordinator count, 1 or an odd quorum size. */}}
{{- define "gregor.coordinator.replicas" -}}
{{- $count := int .Values.coordinator.replicas -}}
{{- if or (lt $count 1) (eq (mod $count 2) 0) -}}
{{- fail (printf "coordinator.replicas: %d; use 1, or an odd quorum of 3 or 5 (an even one survives no more losses than the odd one below it)" $count) -}}
{{- end -}}
{{- if gt $count 1 -}}
{{- if .Values.coordinator.tls.enabled -}}
{{- fail "coordinator.tls.enabled with coordinator.replicas > 1: not supported yet (a member's server.N client port would be both its plaintext port, which the kubelet probes, and its TLS port)" -}}
{{- end -}}
{{- $budget := .Values.coordinator.podDisruptionBudget.maxUnavailable -}}
{{- if and (not (kindIs "string" $budget)) (gt (int $budget) (div (sub $count 1) 2)) -}}
{{- fail (printf "coordinator.podDisruptionBudget.maxUnavailable: %d would let a drain take the majority of %d coordinators" (int $budget) $count) -}}
{{- end -}}
{{- end -}}
{{- $count -}}
{{- end -}}

{{/* The coordinator port clients use: the TLS one with coordinator.tls. */}}
{{- define "gregor.coordinator.clientPort" -}}
{{- int (ternary .Values.coordinator.tls.port .Values.coordinator.port .Values.coordinator.tls.enabled) -}}
{{- end -}}

{{/* ZOO_SERVERS: server.N+1 is pod N, by its stable DNS name
(ZooKeeper's ids start at 1; the coordinator takes its own from POD_NAME). */}}
{{- define "gregor.coordinator.servers" -}}
{{- $name := include "gregor.coordinator.fullname" . -}}
{{- $headless := include "gregor.coordinator.headless" . -}}
{{- $port := include "gregor.coordinator.clientPort" . -}}
{{- $servers := list -}}
{{- range $i := until (int (include "gregor.coordinator.replicas" .)) -}}
{{- $host := printf "%s-%d.%s.%s.svc.%s" $name $i $headless $.Release.Namespace $.Values.clusterDomain -}}
{{- $servers = append $servers (printf "server.%d=%s:%d:%d;%s" (add1 $i) $host (int $.Values.coordinator.peerPort) (int $.Values.coordinator.electionPort) $port) -}}
{{- end -}}
{{- join " " $servers -}}
{{- end -}}

{{/* "true" when each broker gets its own properties file (an external
address or a rack of its own). */}}
{{- define "gregor.broker.perPodConfig" -}}
{{- if or .Values.external.enabled .Values.broker.racks }}true{{ end -}}
{{- end -}}

{{/* zookeeper.connect: every coordinator pod by its stable DNS name. */}}
{{- define "gregor.coordinator.connect" -}}
{{- $name := include "gregor.coordinator.fullname" . -}}
{{- $headless := include "gregor.coordinator.headless" . -}}
{{- $servers := list -}}
{{- $port := include "gregor.coordinator.clientPort" . -}}
{{- range $i := until (int (include "gregor.coordinator.replicas" .)) -}}
{{- $servers = append $servers (printf "%s-%d.%s.%s.svc.%s:%s" $name $i $headless $.Release.Namespace $.Values.clusterDomain $port) -}}
{{- end -}}
{{- join "," $servers -}}
{{- end -}}

{{/* server.properties shared by every broker. */}}
{{- define "gregor.broker.properties" -}}
log.dirs=/var/lib/gregor
admin.listener=0.0.0.0:{{ .Values.broker.adminPort }}
{{- include "gregor.broker.securityProperties" . }}
{{- range $key, $value := .Values.broker.config }}
{{- if regexMatch "(?i)(password|jaas)" $key }}
{{- fail (printf "broker.config.%s: secrets do not belong in the ConfigMap; give it as KAFKA_* env from a Secret in broker.extraEnv" $key) }}
{{- end }}
{{- /* YAML numbers arrive as floats: print 1073741824, not 1.073741824e+09. */}}
{{- if and (kindIs "float64" $value) (eq (float64 (int64 $value)) $value) }}
{{ $key }}={{ int64 $value }}
{{- else }}
{{ $key }}={{ $value }}
{{- end }}
{{- end }}
{{- if not (hasKey .Values.broker.config "offsets.topic.replication.factor") }}
{{- /* Kafka's default 3, but no more than there are brokers: with fewer, groups would wait for brokers that never come. */}}
offsets.topic.replication.factor={{ min 3 (int (include "gregor.broker.replicas" .)) }}
{{- end }}
{{- end -}}


{{/* Where tls.existingSecret is mounted, read-only, in every pod. */}}
{{- define "gregor.tls.dir" -}}
/etc/gregor-tls
{{- end -}}

{{/* The listeners in use: name → security protocol, validated. */}}
{{- define "gregor.listenerProtocols" -}}
{{- $protocols := dict "INTERNAL" .Values.listeners.client.protocol -}}
{{- if .Values.external.enabled -}}
{{- $_ := set $protocols "EXTERNAL" .Values.listeners.external.protocol -}}
{{- end -}}
{{- range $name, $protocol := $protocols -}}
{{- if not (has $protocol (list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL")) -}}
{{- fail (printf "listeners: %s is %q; expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL" $name $protocol) -}}
{{- end -}}
{{- end -}}
{{- toJson $protocols -}}
{{- end -}}

{{/* listener.security.protocol.map, e.g. INTERNAL:SSL,EXTERNAL:SASL_SSL. */}}
{{- define "gregor.protocolMap" -}}
{{- $protocols := include "gregor.listenerProtocols" . | fromJson -}}
{{- $pairs := list (printf "INTERNAL:%s" $protocols.INTERNAL) -}}
{{- if hasKey $protocols "EXTERNAL" -}}
{{- $pairs = append $pairs (printf "EXTERNAL:%s" $protocols.EXTERNAL) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* "true" when a listener speaks TLS. */}}
{{- define "gregor.listenersUseTls" -}}
{{- range $name, $protocol := include "gregor.listenerProtocols" . | fromJson -}}
{{- if has $protocol (list "SSL" "SASL_SSL") }}true{{ end -}}
{{- end -}}
{{- end -}}

{{/* "true" when a listener authenticates with SASL. */}}
{{- define "gregor.listenersUseSasl" -}}
{{- range $name, $protocol := include "gregor.listenerProtocols" . | fromJson -}}
{{- if has $protocol (list "SASL_PLAINTEXT" "SASL_SSL") }}true{{ end -}}
{{- end -}}
{{- end -}}

{{/* "true" when any pod needs tls.existingSecret; fails without one. */}}
{{- define "gregor.tls.enabled" -}}
{{- if or (include "gregor.listenersUseTls" .) .Values.coordinator.tls.enabled -}}
{{- if not .Values.tls.existingSecret -}}
{{- fail "TLS (an SSL/SASL_SSL listener or coordinator.tls.enabled) needs tls.existingSecret: gregor security init DIR, then kubectl create secret generic gregor-tls --from-file=DIR/ca.pem --from-file=DIR/broker-keystore.pem --from-file=DIR/coordinator-keystore.pem" -}}
{{- end -}}
{{- if ne (upper .Values.tls.type) "PEM" -}}
{{- fail (printf "tls.type: %s; gregor reads PEM files only" .Values.tls.type) -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* The Secret KAFKA_CLIENT_PASSWORDS comes from: sasl.existingSecret, or
the chart's own when sasl.client.passwords is set. */}}
{{- define "gregor.sasl.secretName" -}}
{{- if .Values.sasl.existingSecret -}}
{{- .Values.sasl.existingSecret -}}
{{- else if .Values.sasl.client.passwords -}}
{{- printf "%s-sasl" (include "gregor.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* sasl.client.passwords as Kafka's comma-separated list. */}}
{{- define "gregor.sasl.passwords" -}}
{{- $passwords := .Values.sasl.client.passwords -}}
{{- if kindIs "slice" $passwords }}{{ join "," $passwords }}{{ else }}{{ $passwords }}{{ end -}}
{{- end -}}

{{/* The TLS, SASL and ACL lines of server.properties (no secrets). */}}
{{- define "gregor.broker.securityProperties" -}}
{{- $dir := include "gregor.tls.dir" . }}
{{- if include "gregor.tls.enabled" . }}
ssl.keystore.type=PEM
ssl.keystore.location={{ $dir }}/{{ .Values.tls.brokerKeystore }}
ssl.truststore.type=PEM
ssl.truststore.location={{ $dir }}/{{ .Values.tls.truststore }}
ssl.client.auth={{ .Values.tls.sslClientAuth }}
{{- with .Values.listeners.client.sslClientAuth }}
listener.name.internal.ssl.client.auth={{ . }}
{{- end }}
{{- if and .Values.external.enabled .Values.listeners.external.sslClientAuth }}
listener.name.external.ssl.client.auth={{ .Values.listeners.external.sslClientAuth }}
{{- end }}
{{- end }}
{{- if include "gregor.listenersUseSasl" . }}
sasl.enabled.mechanisms={{ .Values.sasl.enabledMechanisms }}
{{- end }}
{{- if .Values.coordinator.tls.enabled }}
zookeeper.ssl.client.enable=true
zookeeper.ssl.keystore.type=PEM
zookeeper.ssl.keystore.location={{ $dir }}/{{ .Values.tls.brokerKeystore }}
zookeeper.ssl.truststore.type=PEM
zookeeper.ssl.truststore.location={{ $dir }}/{{ .Values.tls.truststore }}
{{- end }}
{{- with .Values.authorizerClassName }}
authorizer.class.name={{ . }}
{{- with $.Values.superUsers }}
super.users={{ . }}
{{- end }}
allow.everyone.if.no.acl.found={{ $.Values.allowEveryoneIfNoAclFound }}
{{- end }}
{{- end -}}
