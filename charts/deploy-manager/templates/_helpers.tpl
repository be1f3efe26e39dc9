{{- define "deploy-manager.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "deploy-manager.labels" -}}
app.kubernetes.io/name: deploy-manager
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "deploy-manager.selector" -}}
app.kubernetes.io/name: deploy-manager
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "deploy-manager.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "deploy-manager.fullname" .) -}}
{{- end -}}

{{- define "deploy-manager.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* Memory for the service plus one helm process per parallel component (requests = limits: never evicted mid-upgrade). */}}
{{- define "deploy-manager.memory" -}}
{{- add .Values.memory.serviceMiB (mul .Values.config.maxParallel .Values.memory.perHelmMiB) -}}Mi
{{- end -}}

{{/* The pod's grace minus the time the process needs to stop: how long a running run may go on (DM_SHUTDOWN_GRACE_SECONDS). */}}
{{- define "deploy-manager.shutdownGrace" -}}
{{- $grace := int .Values.terminationGracePeriodSeconds -}}
{{- $exit := int .Values.shutdown.exitSeconds -}}
{{- $helm := int .Values.shutdown.longestHelmTimeoutSeconds -}}
{{- $needed := add $helm 30 $exit -}}
{{- if lt $grace $needed -}}
{{- fail (printf "terminationGracePeriodSeconds=%d is shorter than a running helm command needs: shutdown.longestHelmTimeoutSeconds (%d) + helm's 30 s margin + shutdown.exitSeconds (%d) = %d" $grace $helm $exit $needed) -}}
{{- end -}}
{{- sub $grace $exit -}}
{{- end -}}

{{- define "deploy-manager.rbacMode" -}}
{{- $mode := .Values.rbac.mode -}}
{{- if and (eq $mode "namespaced") (not .Values.rbac.namespaces) -}}
{{- fail "rbac.mode=namespaced needs rbac.namespaces (the namespaces of the cluster's components)" -}}
{{- end -}}
{{- if and (eq $mode "rules") (not .Values.rbac.rules) -}}
{{- fail "rbac.mode=rules needs rbac.rules" -}}
{{- end -}}
{{- $mode -}}
{{- end -}}
