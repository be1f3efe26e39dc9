{{/*
Names and labels. Every object is named after the release (`<release>-<part>`) so two releases of
one chart can share a namespace, and labelled the Kubernetes-recommended way.
*/}}

{{/* The name of one part of the release: keystone-api, nova-conductor …; the part named like the chart is the release itself (memcached). */}}
{{- define "common.fullname" -}}
{{- $root := index . 0 -}}{{- $part := index . 1 -}}
{{- if eq $part $root.Chart.Name -}}
{{- $root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" $root.Release.Name $part | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "common.selectorLabels" -}}
{{- $root := index . 0 -}}{{- $part := index . 1 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ $part }}
{{- end -}}

{{/* Deliberately no chart version label: a chart version bump alone must not change selectors or roll pods. */}}
{{- define "common.labels" -}}
{{ include "common.selectorLabels" . }}
app.kubernetes.io/part-of: openstack
app.kubernetes.io/managed-by: {{ (index . 0).Release.Service }}
{{- end -}}

{{/* The image reference for a key under `images.tags`; a missing key is a render error naming it. */}}
{{- define "common.image" -}}
{{- $root := index . 0 -}}{{- $key := index . 1 -}}
{{- $tags := $root.Values.images.tags | default dict -}}
{{- required (printf "images.tags.%s is not set" $key) (index $tags $key) -}}
{{- end -}}

{{/*
The pull policy of an image reference: `images.pullPolicy` when set; else IfNotPresent for a digest-pinned
reference (repo:tag@sha256:…, the bytes cannot change) and Always for a tag alone (a re-pushed tag must not be
served from a node's older copy). deploy_manager.desired.images.pull_policy decides the same for bootstrap Jobs.
*/}}
{{- define "common.pullPolicy" -}}
{{- $root := index . 0 -}}{{- $ref := index . 1 -}}
{{- with ($root.Values.images | default dict).pullPolicy -}}
{{- . -}}
{{- else -}}
{{- ternary "IfNotPresent" "Always" (regexMatch "@sha256:[0-9a-f]{64}$" $ref) -}}
{{- end -}}
{{- end -}}

{{/* In-cluster DNS name of a Service of this release. */}}
{{- define "common.serviceHost" -}}
{{- $root := index . 0 -}}{{- $part := index . 1 -}}
{{- printf "%s.%s.svc.%s" (include "common.fullname" (list $root $part)) $root.Release.Namespace ($root.Values.global.clusterDomain | default "cluster.local") -}}
{{- end -}}
