"""Patch semantics of the Kubernetes API: pure functions, no I/O.

- :mod:`.strategic` — strategic merge patch (``application/strategic-merge-patch+json``)
- :mod:`.merge` — JSON merge patch, RFC 7386 (``application/merge-patch+json``)
- :mod:`.jsonpatch` — JSON patch, RFC 6902 (``application/json-patch+json``)
- :mod:`.apply` — server-side apply with ``metadata.managedFields`` (``application/apply-patch+yaml``)
- :mod:`.schema` — which lists merge by which keys, read from the built-in OpenAPI schemas
- :mod:`.errors` — what the server turns into 400/409/422 ``Status`` answers

Inputs are never mutated; every function returns a new object. The only data read is the
Kubernetes schema set packaged with ``kubernetes-validate`` (loaded once, lazily).
"""
