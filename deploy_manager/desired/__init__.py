"""The desired state of one cluster at one commit.

Loads `values/<cluster>/cluster.yaml` (validated by the pydantic model in `schema.py`, published as
`deploy_manager/schemas/cluster.schema.json`), merges the values layers
(`values/_common/_global.yaml`, `values/_common/<component>.yaml`, `values/<cluster>/_global.yaml`,
`values/<cluster>/<component>.yaml`; later wins, maps merge deeply, lists replace) and computes each
component's digest. Errors name the file and the line or key path.
"""

from deploy_manager.desired.loader import cluster_file, load_cluster

__all__ = ["cluster_file", "load_cluster"]
