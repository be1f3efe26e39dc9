{{- define "placement.confDefaults" -}}{{- end -}}
