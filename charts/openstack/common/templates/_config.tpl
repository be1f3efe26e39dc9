{{/*
The `<release>-etc` config Secret and its checksum.

`.Values.configFiles` names the files: {<conf key>: {file: keystone.conf, format: ini|properties|raw|yaml|python,
mountPath: (optional, default <configDir>/<file>)}}. `file` is also the Secret's data key (no slashes).
The content of each comes from `.Values.conf.<conf key>`: a nested map for ini/yaml/python, a string
for raw. Files are rendered in sorted key order, so the Secret's data (and its checksum) are a pure
function of the values. Passwords never go into `conf`: they reach the processes as oslo.config
environment variables (OS_<GROUP>__<OPTION>, see common.openstackEnv) built from referenced Secrets.
*/}}

{{- define "common.configFile" -}}
{{- $root := index . 0 -}}{{- $key := index . 1 -}}{{- $spec := index . 2 -}}
{{- $content := index (include "common.conf" $root | fromYaml) $key -}}
{{- $format := $spec.format | default "ini" -}}
{{- if eq $format "ini" -}}
{{- include "common.ini" ($content | default dict) | trimPrefix "\n" -}}
{{- else if eq $format "yaml" -}}
{{- toYaml ($content | default dict) -}}{{ "\n" }}
{{- else if eq $format "python" -}}
{{- include "common.pysettings" ($content | default dict) -}}
{{- else if eq $format "properties" -}}
{{- range $k, $v := ($content | default dict) }}{{ $k }} = {{ include "common.ini.value" $v }}{{ "\n" }}{{ end -}}
{{- else if eq $format "raw" -}}
{{- $content | default "" -}}
{{- else -}}
{{- fail (printf "configFiles.%s.format: unknown format %q (ini, properties, yaml, python, raw)" $key $format) -}}
{{- end -}}
{{- end -}}

{{/* The Secret's `data:` map body (filename: base64), sorted by conf key. */}}
{{- define "common.configData" -}}
{{- $root := . -}}
{{- range $key, $spec := ($root.Values.configFiles | default dict) }}
{{ required (printf "configFiles.%s.file is not set" $key) $spec.file }}: {{ include "common.configFile" (list $root $key $spec) | b64enc }}
{{- end }}
{{- end -}}

{{- define "common.configSecret" -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "common.fullname" (list . "etc") }}
  labels:
    {{- include "common.labels" (list . "config") | nindent 4 }}
type: Opaque
data:
  {{- include "common.configData" . | trim | nindent 2 }}
{{- end -}}

{{/*
sha256 of the config Secret's data: put on pod templates as `checksum/config`, so a config change
rolls the pods and nothing else (replicas, resources of other parts, labels) changes it.
*/}}
{{- define "common.checksumConfig" -}}
{{- include "common.configData" . | sha256sum -}}
{{- end -}}

{{/* Python settings (horizon's local_settings.py): KEY = <literal>, keys sorted. `_prelude` is copied verbatim
first, `_epilogue` verbatim last (for settings computed from the pod's environment). */}}
{{- define "common.pysettings" -}}
{{- $conf := . -}}
{{- with $conf._prelude }}{{ . }}{{ "\n" }}{{ end -}}
{{- range $key, $value := $conf }}
{{- if not (has $key (list "_prelude" "_epilogue")) }}
{{ $key }} = {{ include "common.pyliteral" $value }}
{{- end }}
{{- end }}
{{- with $conf._epilogue }}
{{ . }}
{{- end }}
{{ "" }}
{{- end -}}

{{- define "common.pyliteral" -}}
{{- if kindIs "invalid" . -}}None
{{- else if kindIs "bool" . -}}{{ ternary "True" "False" . }}
{{- else if kindIs "string" . -}}{{ toJson . }}
{{- else if kindIs "float64" . -}}{{ include "common.ini.value" . }}
{{- else if or (kindIs "int" .) (kindIs "int64" .) -}}{{ . }}
{{- else if kindIs "slice" . -}}[{{ $items := list }}{{ range . }}{{ $items = append $items (include "common.pyliteral" .) }}{{ end }}{{ join ", " $items }}]
{{- else if kindIs "map" . -}}{{ $items := list }}{{ range $k, $v := . }}{{ $items = append $items (printf "%s: %s" (toJson $k) (include "common.pyliteral" $v)) }}{{ end }}{{ printf "{%s}" (join ", " $items) }}
{{- else -}}{{ fail (printf "cannot render %s as a Python literal" (kindOf .)) }}
{{- end -}}
{{- end -}}

{{/*
The effective `conf`: values win over computed defaults. Defaults are what every cluster would
otherwise repeat (keystone and memcached endpoints derived from the namespace, the service user,
the region) and come from the chart's own `<chart>.confDefaults` template on top of
common.confDefaults.
*/}}
{{- define "common.conf" -}}
{{- $defaults := fromYaml (include "common.confDefaults" .) -}}
{{- $chart := fromYaml (include (printf "%s.confDefaults" .Chart.Name) .) -}}
{{- $merged := merge (deepCopy (.Values.conf | default dict)) $chart $defaults -}}
{{- toYaml $merged -}}
{{- end -}}

{{/* Generic defaults for an OpenStack API service: token validation through keystone, cached in memcached. */}}
{{- define "common.confDefaults" -}}
{{- $root := . -}}
{{- with $root.Values.serviceUser }}
{{ $root.Values.confKey | default $root.Chart.Name }}:
  keystone_authtoken:
    auth_type: password
    auth_url: {{ include "common.keystoneInternalURL" $root }}
    www_authenticate_uri: {{ include "common.keystonePublicURL" $root }}
    memcached_servers: {{ include "common.memcachedServers" $root }}
    region_name: {{ $root.Values.global.region }}
    project_domain_name: Default
    user_domain_name: Default
    project_name: service
    username: {{ . }}
    service_token_roles_required: true
  {{- with $root.Values.messaging }}
  # Notifications only when something consumes them (notifications.enabled): unconsumed ones pile up
  # in RabbitMQ until its memory alarm blocks every publisher.
  oslo_messaging_notifications:
    driver: {{ ternary "messagingv2" "noop" (eq (toString ($root.Values.notifications | default dict).enabled) "true") }}
  {{- end }}
  oslo_concurrency:
    lock_path: /var/lib/{{ $root.Chart.Name }}/tmp
{{- end }}
{{- end -}}

{{- define "common.keystoneInternalURL" -}}
{{- $g := .Values.global -}}
{{- (($g.keystone | default dict).internalURL) | default (printf "http://keystone-api.%s.svc.%s:5000" .Release.Namespace ($g.clusterDomain | default "cluster.local")) -}}
{{- end -}}

{{- define "common.keystonePublicURL" -}}
{{- $g := .Values.global -}}
{{- $tls := eq (toString ($g.tls | default dict).enabled) "true" -}}
{{- printf "%s://identity.%s" (ternary "https" "http" $tls) (required "global.publicDomain is not set" $g.publicDomain) -}}
{{- end -}}

{{- define "common.memcachedServers" -}}
{{- $g := .Values.global -}}
{{- $servers := ($g.memcached | default dict).servers -}}
{{- if $servers -}}{{ join "," $servers }}{{- else -}}{{ printf "memcached.%s.svc.%s:11211" .Release.Namespace ($g.clusterDomain | default "cluster.local") }}{{- end -}}
{{- end -}}

{{/* keystone password auth as this chart's service user, for the [placement], [neutron], [nova] … sections. */}}
{{- define "common.ksAuth" -}}
{{ include "common.ksAuthBase" . }}
valid_interfaces: internal
{{- end -}}

{{/* The keystone password-auth options alone (plus the region), for sections without keystoneauth's adapter options. */}}
{{- define "common.ksAuthBase" -}}
{{ include "common.ksAuthCreds" . }}
region_name: {{ .Values.global.region }}
{{- end -}}

{{/* Only the credentials (e.g. nova's [service_user], which takes no region or interface). */}}
{{- define "common.ksAuthCreds" -}}
auth_type: password
auth_url: {{ include "common.keystoneInternalURL" . }}
project_domain_name: Default
user_domain_name: Default
project_name: service
username: {{ required "serviceUser is not set" .Values.serviceUser }}
{{- end -}}
