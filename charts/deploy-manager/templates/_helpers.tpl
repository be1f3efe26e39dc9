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
