{{/* Where horizon finds keystone and its cache, derived from the cluster facts. */}}
{{- define "horizon.confDefaults" -}}
{{- $public := include "common.publicURL" (list . "horizon") }}
horizon:
  OPENSTACK_HOST: {{ include "common.keystoneInternalURL" . | quote }}
  OPENSTACK_KEYSTONE_URL: {{ printf "%s/v3" (include "common.keystoneInternalURL" .) | quote }}
  OPENSTACK_ENDPOINT_TYPE: internalURL
  ALLOWED_HOSTS: [{{ printf "%s.%s" .Values.services.horizon.ingress.host .Values.global.publicDomain | quote }}, {{ include "common.serviceHost" (list . "horizon") | quote }}, localhost, 127.0.0.1]
  CSRF_TRUSTED_ORIGINS: [{{ $public | quote }}]
  USE_X_FORWARDED_HOST: true
  SECURE_PROXY_SSL_HEADER: [HTTP_X_FORWARDED_PROTO, https]
  CSRF_COOKIE_SECURE: {{ eq (toString (.Values.global.tls | default dict).enabled) "true" }}
  SESSION_COOKIE_SECURE: {{ eq (toString (.Values.global.tls | default dict).enabled) "true" }}
  AVAILABLE_REGIONS: []
  CACHES:
    default:
      BACKEND: django.core.cache.backends.memcached.PyMemcacheCache
      LOCATION: {{ splitList "," (include "common.memcachedServers" .) | toJson }}
{{- end -}}
