{{- define "neutron.confDefaults" -}}
neutron:
  # neutron's [nova] and [placement] read endpoint_type (valid_interfaces is not an option there): from
  # inside the cluster only the internal endpoints resolve.
  nova:
    {{- include "common.ksAuthBase" . | nindent 4 }}
    endpoint_type: internal
  placement:
    {{- include "common.ksAuthBase" . | nindent 4 }}
    endpoint_type: internal
  oslo_concurrency:
    lock_path: /var/lib/neutron/tmp
{{- end -}}
