{{/* Refuse value combinations that would render a cluster that cannot work. */}}
{{- define "deja.validate" -}}
{{- if and (include "deja.redisUsed" .) (not .Values.redis.enabled) (not .Values.redis.external.url) -}}
{{- fail "redis.enabled is false: set redis.external.url (redis://host:port) for the store and the embedding cache" -}}
{{- end -}}
{{- if and .Values.redis.external.cluster .Values.redis.enabled -}}
{{- fail "redis.external.cluster is true: set redis.enabled false and redis.external.url to a node of the Redis Cluster (the chart's own Valkey is a single node)" -}}
{{- end -}}
{{- if and .Values.redis.external.cluster (regexMatch "/[0-9]+$" (.Values.redis.external.url | trimSuffix "/")) -}}
{{- fail "redis.external.cluster is true: redis.external.url must name no database (a Redis Cluster has only database 0)" -}}
{{- end -}}
{{- if and (include "deja.qdrantUsed" .) (not .Values.qdrant.enabled) (not .Values.qdrant.external.url) -}}
{{- fail "qdrant.enabled is false: set qdrant.external.url (http://host:6333) for the semantic index" -}}
{{- end -}}
{{- if and .Values.qdrant.distributed.enabled (lt (int .Values.qdrant.replicas) 2) -}}
{{- fail "qdrant.distributed.enabled needs qdrant.replicas >= 2" -}}
{{- end -}}
{{- if and (eq .Values.triton.modelRepository.source "volume") (empty .Values.triton.modelRepository.volume) -}}
{{- fail "triton.modelRepository.source is volume: set triton.modelRepository.volume (e.g. persistentVolumeClaim: {claimName: ...})" -}}
{{- end -}}
{{- if not (include "deja.deployed" (list . "gateway")) -}}
{{- fail "components.gateway must be enabled: it is the only way in" -}}
{{- end -}}
{{- end -}}
