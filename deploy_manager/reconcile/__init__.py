"""Execute a plan: DAG order, bounded parallelism, dependents blocked (transitively) when a need fails.

`hooks.ComponentHook` is the seam for bootstrap steps (deploy_manager.bootstrap implements it): called
before and after each component's helm upgrade.
"""

from deploy_manager.reconcile.executor import execute
from deploy_manager.reconcile.hooks import ComponentHook, HookContext, HookPhase
from deploy_manager.reconcile.upgrade import ReleaseWriter, release_labels

__all__ = ["ComponentHook", "HookContext", "HookPhase", "ReleaseWriter", "execute", "release_labels"]
