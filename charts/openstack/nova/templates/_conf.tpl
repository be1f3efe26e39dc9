{{/* nova.conf sections every cluster would otherwise spell out: how nova reaches the other services. */}}
{{- define "nova.confDefaults" -}}
nova:
  placement:
    {{- include "common.ksAuth" . | nindent 4 }}
  neutron:
    {{- include "common.ksAuth" . | nindent 4 }}
  glance:
    valid_interfaces: internal
    region_name: {{ .Values.global.region }}
  cinder:
    catalog_info: "volumev3::internalURL"
    os_region_name: {{ .Values.global.region }}
  service_user:
    {{- include "common.ksAuthCreds" . | nindent 4 }}
    send_service_user_token: true
  vnc:
    enabled: true
    novncproxy_host: 0.0.0.0
    novncproxy_port: 6080
    novncproxy_base_url: {{ printf "%s/vnc_lite.html" (include "common.publicURL" (list . "novncproxy")) }}
  cache:
    enabled: true
    backend: oslo_cache.memcache_pool
    memcache_servers: {{ include "common.memcachedServers" . }}
{{- end -}}
