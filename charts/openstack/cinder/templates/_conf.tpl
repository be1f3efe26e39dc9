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
{{- end -}}
