"""kubesim: a small, stateful Kubernetes API server for tests and demos.

Real helm (v4) and kubectl drive it over HTTP as if it were a cluster. It is test and demo
infrastructure only: nothing under ``deploy_manager`` except the ``sandbox`` CLI entry point
may import it.
"""
