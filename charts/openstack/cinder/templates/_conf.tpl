{{- define "cinder.confDefaults" -}}
cinder:
  nova:
    {{- include "common.ksAuth" . | nindent 4 }}
    interface: internal
  oslo_concurrency:
    lock_path: /var/lib/cinder/tmp
{{- end -}}
