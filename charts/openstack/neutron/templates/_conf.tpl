{{- define "neutron.confDefaults" -}}
neutron:
  nova:
    {{- include "common.ksAuth" . | nindent 4 }}
  placement:
    {{- include "common.ksAuth" . | nindent 4 }}
  oslo_concurrency:
    lock_path: /var/lib/neutron/tmp
{{- end -}}
