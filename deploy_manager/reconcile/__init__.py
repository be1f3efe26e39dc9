"""Act on a plan: the executor runs actions in DAG order, each through its step kind (one module each).

- `step`: the step-kind contract (`StepKind`), the run's shared `RunContext`, message constants;
- `executor`: DAG order, bounded parallelism, dependents blocked; dispatches on `ActionKind` (`STEP_KINDS`);
- `upgrade`: install and upgrade (helm), with the component's bootstrap phases around it;
- `bootstrap`: hands a phase's planned steps and the snapshot's Jobs to the hook (the bootstrap engine);
- `hooks`: the hook protocol called before and after each write.
New step kinds (unlock, rollback, uninstall) are new modules registered in `executor.STEP_KINDS`.
"""

from deploy_manager.reconcile.executor import STEP_KINDS, dispatch, execute
from deploy_manager.reconcile.hooks import ComponentHook, HookContext, HookPhase
from deploy_manager.reconcile.step import RunContext, StepKind
from deploy_manager.reconcile.upgrade import release_labels, upgrade

__all__ = [
    "STEP_KINDS",
    "ComponentHook",
    "HookContext",
    "HookPhase",
    "RunContext",
    "StepKind",
    "dispatch",
    "execute",
    "release_labels",
    "upgrade",
]
