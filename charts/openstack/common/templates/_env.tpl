{{/*
Credentials. Values only *reference* Secrets provisioned outside the values repo:
  secrets:
    db: {name: keystone-db, key: password}
    service_user: {name: keystone-service-users, key: keystone}
Each reference becomes the env var SECRET_<NAME> (secretKeyRef), and the oslo.config environment
source turns composed variables into options without any password in a file or ConfigMap:
  databases: {database: {user: keystone, name: keystone, secret: db}}
      -> OS_DATABASE__CONNECTION=mysql+pymysql://keystone:$(SECRET_DB)@<global.database.host>:<port>/keystone
  messaging: {user: keystone, vhost: keystone, secret: rabbitmq}  (hosts from global.messaging; the service's
      own vhost wins over global.messaging.vhost)
      -> OS_DEFAULT__TRANSPORT_URL=rabbit://<user>:$(SECRET_RABBITMQ)@host:5672,…/<vhost>
  secretOptions: {keystone_authtoken.password: service_user}
      -> OS_KEYSTONE_AUTHTOKEN__PASSWORD=$(SECRET_SERVICE_USER)
Kubernetes expands $(VAR) from variables defined earlier in the list, so secret refs come first.
Passwords must therefore be URL-safe (they are generated as such).
*/}}
{{- define "common.secretEnvName" -}}
{{- printf "SECRET_%s" (. | upper | replace "-" "_") -}}
{{- end -}}

{{- define "common.openstackEnv" -}}
{{- $root := . -}}
{{- $v := $root.Values -}}
{{- range $name, $ref := ($v.secrets | default dict) }}
- name: {{ include "common.secretEnvName" $name }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "secrets.%s.name is not set" $name) $ref.name }}
      key: {{ required (printf "secrets.%s.key is not set" $name) $ref.key }}
{{- end }}
{{- range $section, $db := ($v.databases | default dict) }}
{{- $g := $v.global.database | default dict }}
- name: OS_{{ $section | upper }}__CONNECTION
  value: {{ printf "mysql+pymysql://%s:$(%s)@%s:%v/%s%s" $db.user (include "common.secretEnvName" $db.secret) (required "global.database.host is not set" $g.host) ($g.port | default 3306 | int) $db.name ($g.query | default "") | quote }}
{{- end }}
{{- with $v.messaging }}
{{- $m := $v.global.messaging | default dict }}
{{- $pw := include "common.secretEnvName" .secret }}
{{- $user := .user }}
{{- $hosts := list }}
{{- range (required "global.messaging.hosts is not set" $m.hosts) }}{{ $hosts = append $hosts (printf "%s:$(%s)@%s:%v" $user $pw . ($m.port | default 5672 | int)) }}{{ end }}
- name: OS_DEFAULT__TRANSPORT_URL
  value: {{ printf "rabbit://%s/%s" (join "," $hosts) (.vhost | default $m.vhost | default "") | quote }}
{{- end }}
{{- range $opt, $secret := ($v.secretOptions | default dict) }}
{{- $parts := splitList "." $opt }}
- name: OS_{{ index $parts 0 | upper }}__{{ index $parts 1 | upper }}
  value: {{ printf "$(%s)" (include "common.secretEnvName" $secret) | quote }}
{{- end }}
{{- end -}}
