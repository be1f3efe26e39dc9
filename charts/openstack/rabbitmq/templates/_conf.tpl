{{/* Peer discovery settings derived from the release, so clusters never spell them out. */}}
{{- define "rabbitmq.confDefaults" -}}
rabbitmq:
  cluster_formation.k8s.service_name: {{ include "common.fullname" (list . "headless") }}
  cluster_formation.k8s.hostname_suffix: {{ printf ".%s.%s.svc.%s" (include "common.fullname" (list . "headless")) .Release.Namespace (.Values.global.clusterDomain | default "cluster.local") }}
{{- end -}}
