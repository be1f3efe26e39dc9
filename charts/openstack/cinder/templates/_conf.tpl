{{- define "cinder.confDefaults" -}}
cinder:
  DEFAULT:
    # Volumes from images: glance's catalog entry, internal interface (the public hostname does not
    # resolve inside the cluster; cinder's default is publicURL).
    glance_catalog_info: "image:glance:internalURL"
  # cinder's [nova] takes `interface` (valid_interfaces is not one of its options).
  nova:
    {{- include "common.ksAuthBase" . | nindent 4 }}
    interface: internal
  oslo_concurrency:
    lock_path: /var/lib/cinder/tmp
{{- $backends := .Values.volume.backends | default dict }}
cinder_volume:
  {{- if $backends }}
  DEFAULT:
    enabled_backends: {{ keys $backends | sortAlpha | join "," | quote }}
  {{- range $name, $opts := $backends }}
  {{ $name }}:
    backend_host: {{ $.Values.volume.backendHost | default "cinder-volume" | quote }}
    {{- toYaml $opts | nindent 4 }}
  {{- end }}
  {{- else }}
  # No backend: no cinder-volume reads this file (it is not deployed); an empty file would be an empty Secret key.
  DEFAULT:
    enabled_backends: ""
  {{- end }}
{{- end -}}
