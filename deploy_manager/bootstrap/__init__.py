"""Bootstrap steps (cluster.yaml `components.<c>.bootstrap`) executed as Kubernetes Jobs, re-run by digest.

`engine.BootstrapEngine` is the reconcile hook; `manifests` builds the Job/ConfigMap/Secret objects
(pure); `etc` renders the chart's config Secret for the Jobs with `helm template`.
"""
