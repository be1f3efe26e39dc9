"""deploy-manager: turns a push to the values repo into an ordered, verified helm rollout."""

__version__ = "0.1.0"
