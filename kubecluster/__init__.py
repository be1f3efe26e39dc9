"""kubecluster: the real Kubernetes control plane for tests and demos, beside :mod:`kubesim`.

etcd, kube-apiserver (RBAC enforced: ``--authorization-mode=Node,RBAC``), kube-controller-manager and
kube-scheduler v1.35.4, built from Go modules by ``make kube`` (``scripts/install_kube.py``), plus kwok,
whose stages (``kwok.yaml``) stand in for kubelets on a few fake nodes: pods are scheduled and turn
Running/Ready, a Job's pod succeeds (or fails: pod template annotation ``kubesim.io/fail: "true"``;
``kubesim.io/never-ready: "true"`` keeps a pod unready) and whose server answers the kubelet API for
them (container logs: one fixed line). Test and dev infrastructure only: nothing
under ``deploy_manager`` imports it.

Modules: ``pki`` (CA, certificates, ServiceAccount keys), ``cluster`` (``start_cluster``: start,
wait until ready, stop), ``testing`` (the pytest backend: one control plane per session, state
cleaned between tests), ``main`` (``python -m kubecluster``: run one until Ctrl-C).
"""
