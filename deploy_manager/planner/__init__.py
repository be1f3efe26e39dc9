"""Pure planning: desired x observed -> ordered actions with machine-readable reasons. No I/O.

`graph` orders components (topological waves, cycle and unknown-need errors), `state` decides each
release's state, `plan` maps states to actions.
"""

from deploy_manager.planner.graph import topo_waves
from deploy_manager.planner.plan import make_plan
from deploy_manager.planner.state import determine_state

__all__ = ["determine_state", "make_plan", "topo_waves"]
