{{/* keystone.conf defaults derived from the cluster facts, so clusters do not repeat them. */}}
{{- define "keystone.confDefaults" -}}
keystone:
  cache:
    enabled: true
    backend: oslo_cache.memcache_pool
    memcache_servers: {{ include "common.memcachedServers" . }}
  fernet_tokens:
    key_repository: /etc/keystone/fernet-keys/
    max_active_keys: 7
  credential:
    key_repository: /etc/keystone/credential-keys/
  catalog:
    cache_time: 600
  # As every service (common.confDefaults): CADF notifications only for clusters that consume them.
  oslo_messaging_notifications:
    driver: {{ ternary "messagingv2" "noop" (eq (toString (.Values.notifications | default dict).enabled) "true") }}
{{- end -}}
