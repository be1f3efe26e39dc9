{{- define "glance.confDefaults" -}}
glance_api:
  DEFAULT:
    public_endpoint: {{ include "common.publicURL" (list . "api") }}
{{- end -}}
