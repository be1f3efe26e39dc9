"""The prefix of every label and annotation deploy-manager writes (release records, bootstrap Jobs)."""

LABEL_PREFIX = "deploy-manager.io/"
