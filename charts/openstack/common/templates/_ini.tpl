{{/*
oslo.config-style INI from a nested map:
  {DEFAULT: {debug: false}, token: {expiration: 3600}}  ->  [DEFAULT]\ndebug = false\n\n[token]\nexpiration = 3600
DEFAULT comes first, then the other sections and their keys sorted (Go templates range over map keys
in order), so the same map always renders the same bytes. Values: a list renders comma-separated
(ListOpt); {type: multistring, values: [...]} repeats the key (MultiStrOpt); null omits the key.
*/}}
{{- define "common.ini" -}}
{{- $conf := . -}}
{{- if hasKey $conf "DEFAULT" }}
{{- include "common.ini.section" (list "DEFAULT" (index $conf "DEFAULT")) }}
{{- end }}
{{- range $section, $opts := $conf }}
{{- if ne $section "DEFAULT" }}
{{- include "common.ini.section" (list $section $opts) }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "common.ini.section" -}}
{{- $name := index . 0 -}}{{- $opts := index . 1 | default dict -}}
{{- if not (kindIs "map" $opts) }}{{ fail (printf "conf: section [%s] must be a map of options, got %s" $name (kindOf $opts)) }}{{ end }}
[{{ $name }}]
{{- range $key, $value := $opts }}
{{- if kindIs "map" $value }}
{{- if eq (toString (index $value "type")) "multistring" }}
{{- range $v := $value.values }}
{{ $key }} = {{ include "common.ini.value" $v }}
{{- end }}
{{- else }}
{{- fail (printf "conf: [%s] %s is a map; only {type: multistring, values: [...]} is allowed" $name $key) }}
{{- end }}
{{- else if kindIs "slice" $value }}
{{ $key }} = {{ include "common.ini.list" $value }}
{{- else if not (kindIs "invalid" $value) }}
{{ $key }} = {{ include "common.ini.value" $value }}
{{- end }}
{{- end }}
{{ "" }}
{{- end -}}

{{- define "common.ini.list" -}}
{{- $out := list -}}
{{- range . }}{{ $out = append $out (include "common.ini.value" .) }}{{ end -}}
{{- join "," $out -}}
{{- end -}}

{{/* Whole numbers arrive as float64 from YAML; print them without an exponent (1000000, not 1e+06). */}}
{{- define "common.ini.value" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}
