"""Run history in SQLite (`$DM_STATE_DIR/deploy-manager.db`): runs, their steps, and the last observed releases."""

from deploy_manager.store.sqlite import RunStore

__all__ = ["RunStore"]
