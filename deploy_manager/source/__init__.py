"""Git access: resolve revisions and read files/trees at a commit without a work tree.

The only importer of GitPython. Reading through commit trees (never a checkout) means concurrent runs
at different commits never see a half-updated tree.
"""

from deploy_manager.source.git import GitSource, TreeEntry

__all__ = ["GitSource", "TreeEntry"]
