{{/* Names and labels. */}}
{{- define "deja.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "deja.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "deja.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "deja.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* (list $ "semanticIndex") -> "<fullname>-semantic-index": the Deployment, Service, HPA... name. */}}
{{- define "deja.resourceName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "deja.fullname" $root) (index . 1 | kebabcase) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "deja.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: deja
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* (list $ "store") -> the labels that select that component's pods. */}}
{{- define "deja.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "deja.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 | kebabcase }}
{{- end -}}

{{- define "deja.labels" -}}
{{ include "deja.commonLabels" (index . 0) }}
{{ include "deja.selectorLabels" . }}
{{- end -}}

{{/* (list $ "store") -> the component's values over componentDefaults, as YAML (use with fromYaml). */}}
{{- define "deja.component" -}}
{{- $root := index . 0 -}}
{{- $own := index $root.Values.components (index . 1) -}}
{{- toYaml (mergeOverwrite (deepCopy $root.Values.componentDefaults) (deepCopy $own)) -}}
{{- end -}}

{{/* (list $ "embedder") -> "true" when the chart runs that component's pods. A component with an
     externalAddr runs elsewhere; the semantic tier's components run only with semantic.enabled. */}}
{{- define "deja.deployed" -}}
{{- $root := index . 0 -}}
{{- $c := index $root.Values.components (index . 1) -}}
{{- if and $c.enabled (not $c.externalAddr) (or (not $c.semanticTier) $root.Values.semantic.enabled) -}}true{{- end -}}
{{- end -}}

{{/* (list $ "embedder") -> "true" when callers can reach it (in the chart or at its externalAddr). */}}
{{- define "deja.reachable" -}}
{{- $root := index . 0 -}}
{{- $c := index $root.Values.components (index . 1) -}}
{{- if or (include "deja.deployed" .) (and $c.externalAddr (or (not $c.semanticTier) $root.Values.semantic.enabled)) -}}true{{- end -}}
{{- end -}}

{{/* (list $ "store") -> host:port callers use. */}}
{{- define "deja.addr" -}}
{{- $root := index . 0 -}}
{{- $c := index $root.Values.components (index . 1) -}}
{{- if $c.externalAddr -}}{{ $c.externalAddr }}{{- else -}}{{ include "deja.resourceName" . }}:{{ $c.port }}{{- end -}}
{{- end -}}

{{/* "true" when some deployed component runs its model on Triton. */}}
{{- define "deja.tritonUsed" -}}
{{- $root := . -}}
{{- range $key, $c := .Values.components -}}
{{- if and (include "deja.deployed" (list $root $key)) (eq (default "" $c.backend) "triton") -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{- define "deja.tritonDeployed" -}}
{{- if and (include "deja.tritonUsed" .) (not .Values.triton.externalAddr) -}}true{{- end -}}
{{- end -}}

{{- define "deja.tritonAddr" -}}
{{- .Values.triton.externalAddr | default (printf "%s-triton:8001" (include "deja.fullname" .)) -}}
{{- end -}}

{{/* "true" when some deployed component keeps data in Redis / Qdrant. */}}
{{- define "deja.redisUsed" -}}
{{- $root := . -}}
{{- range $key, $c := .Values.components -}}
{{- if and (include "deja.deployed" (list $root $key)) $c.redis -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{- define "deja.qdrantUsed" -}}
{{- $root := . -}}
{{- range $key, $c := .Values.components -}}
{{- if and (include "deja.deployed" (list $root $key)) $c.qdrant -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{- define "deja.redisDeployed" -}}
{{- if and (include "deja.redisUsed" .) .Values.redis.enabled -}}true{{- end -}}
{{- end -}}

{{- define "deja.qdrantDeployed" -}}
{{- if and (include "deja.qdrantUsed" .) .Values.qdrant.enabled -}}true{{- end -}}
{{- end -}}

{{/* (list $ db) -> the Redis URL of database `db`; for an external Redis Cluster, a seed-node
redis+cluster:// URL (a cluster has database 0 only, so `db` is not used). */}}
{{- define "deja.redisUrl" -}}
{{- $root := index . 0 -}}
{{- $external := $root.Values.redis.external -}}
{{- if $root.Values.redis.enabled -}}
redis://{{ include "deja.fullname" $root }}-redis:6379/{{ index . 1 }}
{{- else if $external.cluster -}}
{{ regexReplaceAll "^(rediss?)://" ($external.url | trimSuffix "/") "${1}+cluster://" }}
{{- else -}}
{{ $external.url | trimSuffix "/" }}/{{ index . 1 }}
{{- end -}}
{{- end -}}

{{- define "deja.qdrantUrl" -}}
{{- if .Values.qdrant.enabled -}}
http://{{ include "deja.fullname" . }}-qdrant:6333
{{- else -}}
{{ .Values.qdrant.external.url }}
{{- end -}}
{{- end -}}

{{/* OTLP endpoints: gRPC for the Python SDK, HTTP traces URL for Triton; "" when tracing is off. */}}
{{- define "deja.otlpGrpcEndpoint" -}}
{{- if .Values.telemetry.collector.enabled -}}
http://{{ include "deja.fullname" . }}-otel-collector:4317
{{- else if .Values.telemetry.jaeger.enabled -}}
http://{{ include "deja.fullname" . }}-jaeger:4317
{{- else -}}
{{ .Values.telemetry.otlpEndpoint }}
{{- end -}}
{{- end -}}

{{- define "deja.otlpHttpTracesUrl" -}}
{{- if .Values.telemetry.collector.enabled -}}
http://{{ include "deja.fullname" . }}-otel-collector:4318/v1/traces
{{- else if .Values.telemetry.jaeger.enabled -}}
http://{{ include "deja.fullname" . }}-jaeger:4318/v1/traces
{{- end -}}
{{- end -}}

{{/* (list $ "otel-service-name") -> the OTEL_* env of one process. */}}
{{- define "deja.otelEnv" -}}
{{- $root := index . 0 -}}
{{- $endpoint := include "deja.otlpGrpcEndpoint" $root -}}
{{- if $endpoint }}
- name: OTEL_SERVICE_NAME
  value: {{ index . 1 | quote }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: grpc
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $root.Values.telemetry.samplerRatio | quote }}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "service.namespace=deja,k8s.namespace.name=$(K8S_NAMESPACE),k8s.pod.name=$(K8S_POD_NAME)"
{{- end }}
{{- end -}}

{{- define "deja.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "deja.fullname" .)) -}}
{{- end -}}

{{/* (list $ imageValues) -> "repo:tag" (tag "" = appVersion). */}}
{{- define "deja.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 -}}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion (toString $image.tag)) -}}
{{- end -}}

{{/* An emptyDir for /tmp: every root filesystem in the chart is read-only. */}}
{{- define "deja.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end -}}

{{/* (list $ (list "store" ...)) -> a NetworkPolicy `from` admitting those components' pods. */}}
{{- define "deja.netpolFrom" -}}
{{- $root := index . 0 -}}
from:
{{- range index . 1 }}
  - podSelector:
      matchLabels:
        {{- include "deja.selectorLabels" (list $root .) | nindent 8 }}
{{- end }}
{{- end -}}

{{/* (list $ deployedComponents tritonDeployed) -> ingress rules of an OTLP receiver: gRPC (4317)
     from the Deja services' Python SDK, HTTP (4318) from Triton's exporter. */}}
{{- define "deja.netpolOtlp" -}}
{{- $root := index . 0 -}}
- ports:
    - port: 4317
  {{- include "deja.netpolFrom" (list $root (index . 1)) | nindent 2 }}
{{- if index . 2 }}
- ports:
    - port: 4318
  {{- include "deja.netpolFrom" (list $root (list "triton")) | nindent 2 }}
{{- end }}
{{- end -}}
