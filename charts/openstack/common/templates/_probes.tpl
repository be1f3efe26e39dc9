{{/*
Probes from a compact spec, so each chart states only what fits the service:
  {type: http, path: /healthcheck, port: http}     an HTTP GET (2xx/3xx is healthy)
  {type: tcp, port: vnc}                            the port accepts connections
  {type: exec, command: [...]}                      a command exits 0
  {type: amqp}                                      an RPC worker (conductor, scheduler) holds an
                                                    ESTABLISHED connection to the message queue port
                                                    (read from /proc/net/tcp*, no extra tooling)
plus the usual timing fields, defaulted here once.
*/}}
{{- define "common.probe" -}}
{{- $root := index . 0 -}}{{- $p := index . 1 -}}
{{- if eq $p.type "http" }}
httpGet:
  path: {{ $p.path | default "/" }}
  port: {{ $p.port | default "http" }}
  scheme: {{ $p.scheme | default "HTTP" }}
{{- else if eq $p.type "tcp" }}
tcpSocket:
  port: {{ $p.port | default "http" }}
{{- else if eq $p.type "exec" }}
exec:
  command:
    {{- toYaml (required "probe.command is required for type exec" $p.command) | nindent 4 }}
{{- else if eq $p.type "amqp" }}
{{- $port := ($root.Values.global.messaging | default dict).port | default 5672 | int }}
exec:
  command:
    - /bin/sh
    - -c
    - {{ printf "grep -qE '^ *[0-9]+: [0-9A-F]+:[0-9A-F]{4} [0-9A-F]+:%04X 01 ' /proc/net/tcp /proc/net/tcp6" $port | quote }}
{{- else }}
{{- fail (printf "probe type %q is not one of http, tcp, exec, amqp" (toString $p.type)) }}
{{- end }}
initialDelaySeconds: {{ $p.initialDelaySeconds | default 10 }}
periodSeconds: {{ $p.periodSeconds | default 15 }}
timeoutSeconds: {{ $p.timeoutSeconds | default 5 }}
failureThreshold: {{ $p.failureThreshold | default 3 }}
{{- end -}}
