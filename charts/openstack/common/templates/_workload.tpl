{{/*
Workloads from `.Values.services.<part>`:
  api:
    enabled: true
    replicas: 2
    image: keystone_api                  # key under images.tags
    command: [...]; args: [...]
    port: {name: http, containerPort: 5000, servicePort: 5000}   # optional; a Service when set
    extraPorts: [{name, containerPort, servicePort, service: false}]  # more ports (service: false = not exposed)
    serviceSpec: {type, annotations, externalTrafficPolicy}       # the Service's type (default ClusterIP)
    securityContext: {...}                                        # the container's
    probes: {liveness: {...}, readiness: {...}}                  # see common.probe
    resources: {requests: {...}, limits: {...}}
    pdb: {maxUnavailable: 1}                                     # or minAvailable
    ingress: {host: identity}                                    # <host>.<global.publicDomain>
    openstack: true                                              # oslo.config env from secrets/databases/messaging
  Config files (`configFiles`) are mounted file by file (subPath) under configDir (/etc/<chart>),
  so files the image ships in that directory stay visible.
Call: include "common.deployment" (list . "api") or (list . "api" $spec), see common.part
*/}}

{{/*
The spec of one part. A chart that computes parts of it (volumes from other values, controller args)
passes the finished spec as a third element instead of mutating .Values:
  include "common.deployment" (list . "api" $spec)
*/}}
{{- define "common.part" -}}
{{- $root := index . 0 -}}{{- $part := index . 1 -}}
{{- if gt (len .) 2 -}}
{{- toYaml (index . 2) -}}
{{- else -}}
{{- toYaml (required (printf "services.%s is not set" $part) (index ($root.Values.services | default dict) $part)) -}}
{{- end -}}
{{- end -}}

{{- define "common.enabled" -}}
{{- $svc := fromYaml (include "common.part" .) -}}
{{- if ne (toString $svc.enabled) "false" }}true{{ end -}}
{{- end -}}

{{- define "common.configMounts" -}}
{{- $root := . -}}
{{- $dir := $root.Values.configDir | default (printf "/etc/%s" $root.Chart.Name) -}}
{{- range $key, $spec := ($root.Values.configFiles | default dict) }}
- name: etc
  mountPath: {{ $spec.mountPath | default (printf "%s/%s" $dir $spec.file) }}
  subPath: {{ $spec.file }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "common.container" -}}
{{- $root := index . 0 -}}{{- $part := index . 1 -}}
{{- $svc := fromYaml (include "common.part" .) -}}
{{- $openstack := ne (toString $svc.openstack) "false" -}}
- name: {{ $part }}
  {{- $image := include "common.image" (list $root (required (printf "services.%s.image is not set" $part) $svc.image)) }}
  image: {{ $image }}
  imagePullPolicy: {{ include "common.pullPolicy" (list $root $image) }}
  {{- with $svc.command }}
  command:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $svc.args }}
  args:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- $env := "" }}
  {{- if $openstack }}{{ $env = include "common.openstackEnv" $root }}{{ end }}
  {{- if or $env $svc.env }}
  env:
    {{- with $env }}{{ . | trim | nindent 4 }}{{ end }}
    {{- with $svc.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- $ports := concat (ternary (list $svc.port) list (not (empty $svc.port))) ($svc.extraPorts | default list) }}
  {{- with $ports }}
  ports:
    {{- range . }}
    - name: {{ .name | default "http" }}
      containerPort: {{ .containerPort }}
      protocol: TCP
    {{- end }}
  {{- end }}
  {{- with $svc.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $svc.probes }}
  {{- with .liveness }}
  livenessProbe:
    {{- include "common.probe" (list $root .) | trim | nindent 4 }}
  {{- end }}
  {{- with .readiness }}
  readinessProbe:
    {{- include "common.probe" (list $root .) | trim | nindent 4 }}
  {{- end }}
  {{- end }}
  resources:
    {{- toYaml (required (printf "services.%s.resources is not set" $part) $svc.resources) | nindent 4 }}
  {{- $mounts := include "common.configMounts" $root }}
  {{- if or $mounts $svc.volumeMounts }}
  volumeMounts:
    {{- with $mounts }}{{ . | trim | nindent 4 }}{{ end }}
    {{- with $svc.volumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
{{- end -}}

{{/* The pod template (also used by StatefulSets). checksum/config only for charts with a config Secret. */}}
{{- define "common.podTemplate" -}}
{{- $root := index . 0 -}}{{- $part := index . 1 -}}
{{- $svc := fromYaml (include "common.part" .) -}}
{{- $openstack := ne (toString $svc.openstack) "false" -}}
metadata:
  labels:
    {{- include "common.labels" (list $root $part) | nindent 4 }}
  {{- if or $root.Values.configFiles $svc.podAnnotations }}
  annotations:
    {{- if $root.Values.configFiles }}
    checksum/config: {{ include "common.checksumConfig" $root }}
    {{- end }}
    {{- with $svc.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
spec:
  {{- with $svc.serviceAccountName }}
  serviceAccountName: {{ . }}
  {{- else }}
  automountServiceAccountToken: false
  {{- end }}
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ $svc.terminationGracePeriodSeconds | default 30 }}
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "common.selectorLabels" (list $root $part) | nindent 16 }}
  containers:
    {{- include "common.container" . | nindent 4 }}
  {{- $vols := list }}
  {{- if $root.Values.configFiles }}
  {{- $vols = append $vols (dict "name" "etc" "secret" (dict "secretName" (include "common.fullname" (list $root "etc")) "defaultMode" 292)) }}
  {{- end }}
  {{- range ($svc.volumes | default list) }}{{ $vols = append $vols . }}{{ end }}
  {{- with $vols }}
  volumes:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{- define "common.deployment" -}}
{{- $root := index . 0 -}}{{- $part := index . 1 -}}
{{- if include "common.enabled" . }}
{{- $svc := fromYaml (include "common.part" .) }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "common.fullname" . }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  replicas: {{ $svc.replicas | default 1 }}
  revisionHistoryLimit: {{ $root.Values.revisionHistoryLimit | default 5 }}
  selector:
    matchLabels:
      {{- include "common.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    {{- include "common.podTemplate" . | nindent 4 }}
{{- include "common.pdb" . }}
{{- include "common.service" . }}
{{- include "common.ingress" . }}
{{- end }}
{{- end -}}

{{- define "common.pdb" -}}
{{- $svc := fromYaml (include "common.part" .) }}
{{- with $svc.pdb }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "common.fullname" $ }}
  labels:
    {{- include "common.labels" $ | nindent 4 }}
spec:
  {{- if hasKey . "minAvailable" }}
  minAvailable: {{ .minAvailable }}
  {{- else }}
  maxUnavailable: {{ .maxUnavailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "common.selectorLabels" $ | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "common.service" -}}
{{- $svc := fromYaml (include "common.part" .) }}
{{- if $svc.port }}
{{- $spec := $svc.serviceSpec | default dict }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "common.fullname" $ }}
  labels:
    {{- include "common.labels" $ | nindent 4 }}
  {{- with $spec.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $spec.type | default "ClusterIP" }}
  {{- with $spec.externalTrafficPolicy }}
  externalTrafficPolicy: {{ . }}
  {{- end }}
  selector:
    {{- include "common.selectorLabels" $ | nindent 4 }}
  ports:
    {{- range (prepend ($svc.extraPorts | default list) $svc.port) }}
    {{- if ne (toString .service) "false" }}
    - name: {{ .name | default "http" }}
      port: {{ .servicePort | default .containerPort }}
      targetPort: {{ .name | default "http" }}
      protocol: TCP
    {{- end }}
    {{- end }}
{{- end }}
{{- end -}}

{{/* The public URL of a part exposed through the ingress: https://<host>.<publicDomain> (http without TLS). */}}
{{- define "common.publicURL" -}}
{{- $root := index . 0 -}}{{- $svc := fromYaml (include "common.part" .) -}}
{{- $tls := ($root.Values.global.tls | default dict).enabled -}}
{{- printf "%s://%s.%s" (ternary "https" "http" (eq (toString $tls) "true")) $svc.ingress.host (required "global.publicDomain is not set" $root.Values.global.publicDomain) -}}
{{- end -}}

{{- define "common.ingress" -}}
{{- $root := index . 0 -}}
{{- $svc := fromYaml (include "common.part" .) }}
{{- if and $svc.ingress $svc.port }}
{{- $host := printf "%s.%s" $svc.ingress.host (required "global.publicDomain is not set" $root.Values.global.publicDomain) }}
{{- $tls := $root.Values.global.tls | default dict }}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "common.fullname" $ }}
  labels:
    {{- include "common.labels" $ | nindent 4 }}
  {{- with $svc.ingress.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  ingressClassName: {{ $root.Values.global.ingressClass | default "openstack" }}
  {{- if eq (toString $tls.enabled) "true" }}
  tls:
    - hosts: [{{ $host | quote }}]
      secretName: {{ required "global.tls.secretName is required when TLS is enabled" $tls.secretName }}
  {{- end }}
  rules:
    - host: {{ $host | quote }}
      http:
        paths:
          - path: {{ $svc.ingress.path | default "/" }}
            pathType: Prefix
            backend:
              service:
                name: {{ include "common.fullname" $ }}
                port:
                  name: {{ $svc.port.name | default "http" }}
{{- end }}
{{- end -}}
