"""kubesim: a small, stateful Kubernetes API server for tests and demos.

Real helm (v4.1.4) and kubectl (v1.35) drive it over HTTP as if it were a cluster. It is test and
demo infrastructure only: nothing under ``deploy_manager`` except the ``sandbox`` CLI entry point
may import it.

Modules: ``store`` (objects, one resourceVersion counter, watch fan-out), ``discovery`` (resource
table, discovery documents incl. aggregated v2), ``api`` (object semantics), ``server`` (HTTP
routing, watch streams), ``controllers`` (kwok-style stages: workloads become ready, Jobs finish,
garbage collection), ``control`` (the ``/_sandbox/`` API), ``persistence`` (``--state-file``),
``tables`` (kubectl's Table output), ``testing`` (in-process sandbox + helm/kubectl runner),
``main`` (``deploy-manager sandbox``). Pure pieces: ``patch/`` (merge, JSON, strategic, apply),
``codecs`` (protobuf request bodies), ``openapi`` (OpenAPI v2/v3 documents).

Control API (JSON; full reference in :mod:`kubesim.control`):

- ``GET /_sandbox/stats`` -> ``{"requests", "writes", "by_verb", "by_resource", …}``;
  ``POST /_sandbox/reset-stats``.
- ``GET|PUT /_sandbox/config`` ``{"ready_delay": seconds}``.
- ``POST /_sandbox/faults`` with ``{"type": "fail-writes", "resource": "secrets", "count": 2,
  "code": 500}`` | ``{"type": "latency", "seconds": 0.2}`` | ``{"type": "job-fail", "name":
  "db-sync-*"}`` | ``{"type": "never-ready", "kind": "Deployment", "name": "web"}`` |
  ``{"type": "slow", "kind": "Job", "name": "db-sync-*", "seconds": 5}``;
  ``GET /_sandbox/faults``; ``DELETE /_sandbox/faults[/<id>]``.
- Annotations ``kubesim.io/fail: "true"`` (Job, run-to-completion Pod) and
  ``kubesim.io/never-ready: "true"`` (workload or its pod template) do the same from a chart.

Debugging: ``KUBESIM_LOG_REQUESTS=1 deploy-manager sandbox`` logs every request line.

Not modelled: authentication/authorization (any token is accepted, RBAC objects are stored but
not enforced, every access review answers "allowed"), admission webhooks, Events beyond a few
(Job pod created/completed/failed, ReplicaSet scaled up), Endpoints/EndpointSlices, scheduling,
nodes and real containers (Pods only report a phase; logs are synthetic), probes, HPA, CronJob
schedules (no Jobs are spawned), ``spec.paused`` rollouts and ``maxSurge``/``maxUnavailable``
pacing (a rollout is one step), CRD version conversion and CEL validation rules, protobuf/CBOR
responses (requests are decoded; answers are JSON), consistent paginated snapshots (a
``continue`` token resumes by key), ``resourceVersionMatch`` semantics on reads, graceful
deletion periods, ResourceQuota/LimitRange enforcement, and finalizers on a deleted namespace's
content (the namespace takes its content at once).

Compared with the real control plane (``kubecluster``; the same tests run on both with
``DM_TEST_CLUSTER=kube``), fixed here: a strict-decoding 400 names the kind and version as
kube-apiserver's does; an apply without ``fieldManager`` is a 422 Invalid ``PatchOptions``; a deletion
held by finalizers answers 200 (not 202); a patch whose result does not decode is a 422 on field
``patch`` (not a 400). Known and left, because neither helm, kubectl nor the product
reads the difference:

- DELETE answers the deleted object; kube-apiserver answers a ``Status`` for most kinds (clients
  ignore the body of a successful delete);
- an unknown API group's 404 is a JSON ``Status``; kube-apiserver answers plain ``404 page not found``
  (clients only read the code);
- a created workload has no ``status``; kube-apiserver returns ``status: {}`` (readers default it);
- no ``kube-root-ca.crt`` ConfigMap is published into each namespace (nothing of ours mounts it) [diff:root-ca];
- orphaning and foreground deletion by the garbage collector, and a namespace's deletion, happen at once
  (real: asynchronous, ~5 s for a namespace); the product waits for what it deletes;
- the global ``resourceVersion`` moves only with clients' writes (etcd's revision also moves with every
  controller's), so request/write counts (``stats()``) are exact in kubesim and read from the audit log
  there;
- pod logs are synthetic text (``kubesim: container … runs: …``); on the real backend kwok's server (its
  fake kubelet) serves one fixed line for every pod.

Differential conformance (:mod:`kubesim.differential`, ``make conformance-diff``): the conformance suites' helm
and kubectl operations run on kubesim and on the real control plane, and every resulting object is compared
field by field (status, the API server's defaults, metadata, managedFields owners, Events). Its first run found
135 distinct kind/path differences (1,395 in all); fixed here: the PodSpec defaults (``securityContext: {}``,
containers' ``resources: {}``, ``serviceAccount`` kept with ``serviceAccountName``) on pods and templates; what
admission adds to a new Pod (``serviceAccountName: default``, the ``kube-api-access-*`` token volume and mounts,
priority, ``enableServiceLinks``, the not-ready/unreachable tolerations); Pods have a ``generation``, Services
none and ``status.loadBalancer: {}``; controllers' pods carry ``generateName``, no empty annotations, the
kubelet's conditions (``lastProbeTime``, ``PodCompleted``/``PodFailed`` reasons), ``podIPs``/``hostIPs``,
``qosClass`` and ``lastState``; a StatefulSet's pods their ``hostname``/``subdomain`` and
``apps.kubernetes.io/pod-index``; Job defaults (``manualSelector: false``, ``podReplacementPolicy``) and a
label-less Job takes its pods' labels; ``status.ready`` stays 0 on a finished Job, ``terminatingReplicas: 0`` on
Deployments/ReplicaSets, ``collisionCount: 0`` on StatefulSets, ``persistentVolumeClaimRetentionPolicy``
defaulted; a Deployment's annotation change is a new generation; ReplicaSets copy their Deployment's annotations
and carry ``max-replicas``/``revision-history``; controllers' writes are recorded in managedFields
(``kube-controller-manager``, Update, status subresource; pods' status by ``kubelet``); every namespace gets its
``default`` ServiceAccount; the Events the real controllers and scheduler record (ReplicaSet/StatefulSet
``SuccessfulCreate``/``SuccessfulDelete``, Pod ``Scheduled``). Accepted, each named by its allow-list entry in
``kubesim.differential.ACCEPTED`` (a test keeps the two in step):

- [diff:root-ca] ``kube-root-ca.crt`` is not published (above);
- [diff:controller-revisions] no ControllerRevisions for StatefulSets/DaemonSets: only ``kubectl rollout
  history/undo`` of a StatefulSet reads them; helm and the product read the StatefulSet's status revisions;
- [diff:paced-rollouts] a rollout is one step, so an old ReplicaSet reaches 0 replicas in one spec change (real:
  step by step, each a new generation annotated with the Deployment's replica counts of that moment): readers
  compare a ReplicaSet's observedGeneration with its own generation and read counts from the Deployment;
- [diff:controller-races] the real controllers sometimes record a ``FailedDelete``/``FailedCreate`` Warning (a
  pod already gone, a stale write), the scheduler a ``FailedScheduling`` one, and retry; kubesim's do not race,
  and nothing of ours reads Events;
- [diff:scaled-mid-rollout] a Deployment scaled during its rollout: the real controller sometimes ends on a scaling
  sync that leaves its Progressing condition at ``ReplicaSetUpdated``; kubesim ends at ``NewReplicaSetAvailable``.
"""
