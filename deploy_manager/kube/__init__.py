"""The only importer of the `kubernetes` client: release Secrets (and, for other packages, Jobs, Leases, logs)."""

from deploy_manager.kube.client import KubeClient

__all__ = ["KubeClient"]
