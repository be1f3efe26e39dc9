"""Decode Kubernetes protobuf request bodies into the dicts the JSON API would carry.

Contract: ``decode_protobuf(body)`` takes a whole request body in the Kubernetes protobuf
serialization (4-byte magic ``k8s\\x00`` followed by a ``runtime.Unknown`` message) and returns
the object as its JSON form (``apiVersion``, ``kind``, ``metadata`` …), exactly what a client
would have sent with ``Content-Type: application/json``. Pure function, no I/O.

Only the kinds client-go's typed clients write are understood: helm's release storage
(Secret, ConfigMap), typed deletes (DeleteOptions), and what ``kubectl create``/``run`` send
(Namespace, Secret, ConfigMap, ServiceAccount, Service, Pod, apps/v1 Deployment, batch/v1 Job
and CronJob with the common PodSpec fields, RBAC roles and bindings, PodDisruptionBudget,
Ingress). Another kind, or a field of a known kind this
module does not model (pod affinity, topology spread …), raises :class:`UnsupportedProtobuf`
rather than losing data: the server answers 415 (clients do not retry in JSON, so such a
request fails visibly). Malformed bytes raise :class:`ProtobufDecodeError` (a subclass; 400).

Field numbers come from the ``protobuf:"…"`` struct tags in k8s.io/api core/v1 types.go and
k8s.io/apimachinery meta/v1 types.go / runtime generated.proto.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# wire types (protobuf encoding spec)
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class UnsupportedProtobuf(ValueError):
    """The body is protobuf, but of a kind this decoder does not model (server answers 415)."""


class ProtobufDecodeError(UnsupportedProtobuf):
    """The body is not a well-formed Kubernetes protobuf envelope (server answers 400)."""


Field = tuple[int, int, int | bytes]  # (field number, wire type, value)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufDecodeError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufDecodeError("varint too long")


def iter_fields(buf: bytes) -> Iterator[Field]:
    """Yield (field number, wire type, value) for each field of one message, in wire order."""
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise ProtobufDecodeError("field number 0")
        value: int | bytes
        if wt == _VARINT:
            value, pos = _varint(buf, pos)
        elif wt == _LEN:
            size, pos = _varint(buf, pos)
            if pos + size > n:
                raise ProtobufDecodeError("truncated length-delimited field")
            value = buf[pos : pos + size]
            pos += size
        elif wt == _I64:
            if pos + 8 > n:
                raise ProtobufDecodeError("truncated fixed64")
            value = int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        elif wt == _I32:
            if pos + 4 > n:
                raise ProtobufDecodeError("truncated fixed32")
            value = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        else:
            raise ProtobufDecodeError(f"unsupported wire type {wt}")
        yield num, wt, value


# --- scalar converters -------------------------------------------------------------------


def _str(v: int | bytes) -> str:
    if not isinstance(v, bytes):
        raise ProtobufDecodeError("expected a string field")
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtobufDecodeError(f"invalid UTF-8 in string field: {e}") from None


def _bytes(v: int | bytes) -> bytes:
    if not isinstance(v, bytes):
        raise ProtobufDecodeError("expected a bytes field")
    return v


def _int64(v: int | bytes) -> int:
    if not isinstance(v, int):
        raise ProtobufDecodeError("expected a varint field")
    return v - (1 << 64) if v >= 1 << 63 else v  # two's complement int64


def _bool(v: int | bytes) -> bool:
    return bool(_int64(v))


def _time(v: int | bytes) -> str | None:
    """meta/v1 Time {seconds=1, nanos=2} -> RFC 3339 (second precision, like the JSON form).

    The zero Time (an empty message) is ``None``: JSON renders it as null / omits it.
    """
    seconds = 0
    for num, _, val in iter_fields(_bytes(v)):
        if num == 1:
            seconds = _int64(val)
    if seconds == 0:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _map_entry(v: int | bytes) -> tuple[str, int | bytes]:
    # proto3 map<K,V> is a repeated message {key=1, value=2}
    key = ""
    value: int | bytes = b""
    for num, _, val in iter_fields(_bytes(v)):
        if num == 1:
            key = _str(val)
        elif num == 2:
            value = val
    return key, value


# --- message schemas ---------------------------------------------------------------------
# A message maps field number -> (json name, kind, converter). kinds:
#   "one"    sets the value but drops Go zero values (gogo-protobuf always writes non-pointer
#            fields; the JSON form omits them through omitempty);
#   "ptr"    sets it even when zero (Go pointer fields: presence is meaningful);
#   "list"   appends (packed repeated varints are unpacked);
#   "map"    collects map entries (converter applied to the entry value);
#   "inline" merges a sub-message's fields into this object (Go embedded structs, e.g.
#            LocalObjectReference in ConfigMapKeySelector, VolumeSource in Volume).
# A field number a message does not list is tolerated only when it carries a zero value (an
# empty status struct gogo writes anyway); anything else raises UnsupportedProtobuf so the
# server answers 415 instead of silently dropping data.

Conv = Callable[[int | bytes], Any]


class Msg:
    """A protobuf message layout: its name (for errors) and its fields."""

    __slots__ = ("name", "fields")

    def __init__(self, name: str, fields: dict[int, tuple[str, str, Conv]]) -> None:
        self.name = name
        self.fields = fields

    def __call__(self, v: int | bytes) -> dict[str, Any]:
        return _decode_message(_bytes(v), self)


def _b64(v: int | bytes) -> str:
    return base64.b64encode(_bytes(v)).decode("ascii")


def _fields_v1(v: int | bytes) -> Any:
    # FieldsV1 {raw=1}: the raw JSON of the field set
    for num, _, val in iter_fields(_bytes(v)):
        if num == 1:
            try:
                return json.loads(_bytes(val))
            except ValueError as e:
                raise ProtobufDecodeError(f"invalid FieldsV1 JSON: {e}") from None
    return {}


def _int_or_string(v: int | bytes) -> int | str:
    # intstr.IntOrString {type=1 (0 int, 1 string), intVal=2, strVal=3}; JSON is a bare int or string
    typ, ival, sval = 0, 0, ""
    for num, _, val in iter_fields(_bytes(v)):
        if num == 1:
            typ = _int64(val)
        elif num == 2:
            ival = _int64(val)
        elif num == 3:
            sval = _str(val)
    return sval if typ == 1 else ival


def _quantity(v: int | bytes) -> str:
    # resource.Quantity {string=1}; JSON is the canonical string
    for num, _, val in iter_fields(_bytes(v)):
        if num == 1:
            return _str(val)
    return ""


S, N, B = _str, _int64, _bool  # short names keep the field tables readable

# k8s.io/apimachinery meta/v1
OWNER_REFERENCE = Msg(
    "OwnerReference",
    {1: ("kind", "one", S), 3: ("name", "one", S), 4: ("uid", "one", S), 5: ("apiVersion", "one", S),
     6: ("controller", "ptr", B), 7: ("blockOwnerDeletion", "ptr", B)},
)  # fmt: skip
MANAGED_FIELDS_ENTRY = Msg(
    "ManagedFieldsEntry",
    {1: ("manager", "one", S), 2: ("operation", "one", S), 3: ("apiVersion", "one", S), 4: ("time", "one", _time),
     6: ("fieldsType", "one", S), 7: ("fieldsV1", "one", _fields_v1), 8: ("subresource", "one", S)},
)  # fmt: skip
OBJECT_META = Msg(
    "ObjectMeta",
    {1: ("name", "one", S), 2: ("generateName", "one", S), 3: ("namespace", "one", S), 4: ("selfLink", "one", S),
     5: ("uid", "one", S), 6: ("resourceVersion", "one", S), 7: ("generation", "one", N),
     8: ("creationTimestamp", "one", _time), 9: ("deletionTimestamp", "one", _time),
     10: ("deletionGracePeriodSeconds", "ptr", N), 11: ("labels", "map", S), 12: ("annotations", "map", S),
     13: ("ownerReferences", "list", OWNER_REFERENCE), 14: ("finalizers", "list", S),
     15: ("clusterName", "one", S), 17: ("managedFields", "list", MANAGED_FIELDS_ENTRY)},
)  # fmt: skip
LABEL_SELECTOR = Msg(
    "LabelSelector",
    {1: ("matchLabels", "map", S),
     2: ("matchExpressions", "list", Msg("LabelSelectorRequirement",
         {1: ("key", "one", S), 2: ("operator", "one", S), 3: ("values", "list", S)}))},
)  # fmt: skip
PRECONDITIONS = Msg("Preconditions", {1: ("uid", "ptr", S), 2: ("resourceVersion", "ptr", S)})
DELETE_OPTIONS = Msg(
    "DeleteOptions",
    {1: ("gracePeriodSeconds", "ptr", N), 2: ("preconditions", "ptr", PRECONDITIONS),
     3: ("orphanDependents", "ptr", B), 4: ("propagationPolicy", "ptr", S), 5: ("dryRun", "list", S),
     6: ("ignoreStoreReadErrorWithClusterBreakingPotential", "ptr", B)},
)  # fmt: skip

# k8s.io/api core/v1: field numbers from core/v1 generated.proto
SECRET = Msg(
    "Secret",
    {1: ("metadata", "one", OBJECT_META), 2: ("data", "map", _b64), 3: ("type", "one", S),
     4: ("stringData", "map", S), 5: ("immutable", "ptr", B)},
)  # fmt: skip
CONFIG_MAP = Msg(
    "ConfigMap",
    {1: ("metadata", "one", OBJECT_META), 2: ("data", "map", S), 3: ("binaryData", "map", _b64),
     4: ("immutable", "ptr", B)},
)  # fmt: skip
NAMESPACE = Msg(
    "Namespace",
    {1: ("metadata", "one", OBJECT_META),
     2: ("spec", "one", Msg("NamespaceSpec", {1: ("finalizers", "list", S)})),
     3: ("status", "one", Msg("NamespaceStatus", {1: ("phase", "one", S)}))},
)  # fmt: skip
LOCAL_OBJECT_REFERENCE = Msg("LocalObjectReference", {1: ("name", "one", S)})
OBJECT_REFERENCE = Msg(
    "ObjectReference",
    {1: ("kind", "one", S), 2: ("namespace", "one", S), 3: ("name", "one", S), 4: ("uid", "one", S),
     5: ("apiVersion", "one", S), 6: ("resourceVersion", "one", S), 7: ("fieldPath", "one", S)},
)  # fmt: skip
KEY_TO_PATH = Msg("KeyToPath", {1: ("key", "one", S), 2: ("path", "one", S), 3: ("mode", "ptr", N)})
OBJECT_FIELD_SELECTOR = Msg("ObjectFieldSelector", {1: ("apiVersion", "one", S), 2: ("fieldPath", "one", S)})
RESOURCE_FIELD_SELECTOR = Msg(
    "ResourceFieldSelector",
    {1: ("containerName", "one", S), 2: ("resource", "one", S), 3: ("divisor", "one", _quantity)},
)  # fmt: skip


def _keyed_ref(name: str) -> Msg:
    # ConfigMapKeySelector / SecretKeySelector: embedded LocalObjectReference + key + optional
    return Msg(name, {1: ("", "inline", LOCAL_OBJECT_REFERENCE), 2: ("key", "one", S), 3: ("optional", "ptr", B)})


def _env_source(name: str) -> Msg:
    # ConfigMapEnvSource / SecretEnvSource
    return Msg(name, {1: ("", "inline", LOCAL_OBJECT_REFERENCE), 2: ("optional", "ptr", B)})


def _projection(name: str) -> Msg:
    # ConfigMapProjection / SecretProjection
    return Msg(name, {1: ("", "inline", LOCAL_OBJECT_REFERENCE), 2: ("items", "list", KEY_TO_PATH),
                      4: ("optional", "ptr", B)})  # fmt: skip


ENV_VAR = Msg(
    "EnvVar",
    {1: ("name", "one", S), 2: ("value", "one", S),
     3: ("valueFrom", "ptr", Msg("EnvVarSource",
         {1: ("fieldRef", "ptr", OBJECT_FIELD_SELECTOR), 2: ("resourceFieldRef", "ptr", RESOURCE_FIELD_SELECTOR),
          3: ("configMapKeyRef", "ptr", _keyed_ref("ConfigMapKeySelector")),
          4: ("secretKeyRef", "ptr", _keyed_ref("SecretKeySelector"))}))},
)  # fmt: skip
ENV_FROM_SOURCE = Msg(
    "EnvFromSource",
    {1: ("prefix", "one", S), 2: ("configMapRef", "ptr", _env_source("ConfigMapEnvSource")),
     3: ("secretRef", "ptr", _env_source("SecretEnvSource"))},
)  # fmt: skip
CONTAINER_PORT = Msg(
    "ContainerPort",
    {1: ("name", "one", S), 2: ("hostPort", "one", N), 3: ("containerPort", "one", N), 4: ("protocol", "one", S),
     5: ("hostIP", "one", S)},
)  # fmt: skip
RESOURCE_REQUIREMENTS = Msg(
    "ResourceRequirements", {1: ("limits", "map", _quantity), 2: ("requests", "map", _quantity)}
)
VOLUME_MOUNT = Msg(
    "VolumeMount",
    {1: ("name", "one", S), 2: ("readOnly", "one", B), 3: ("mountPath", "one", S), 4: ("subPath", "one", S),
     5: ("mountPropagation", "ptr", S), 6: ("subPathExpr", "one", S)},
)  # fmt: skip
HTTP_GET = Msg(
    "HTTPGetAction",
    {1: ("path", "one", S), 2: ("port", "one", _int_or_string), 3: ("host", "one", S), 4: ("scheme", "one", S),
     5: ("httpHeaders", "list", Msg("HTTPHeader", {1: ("name", "one", S), 2: ("value", "one", S)}))},
)  # fmt: skip
EXEC_ACTION = Msg("ExecAction", {1: ("command", "list", S)})
TCP_SOCKET = Msg("TCPSocketAction", {1: ("port", "one", _int_or_string), 2: ("host", "one", S)})
PROBE_HANDLER = Msg(
    "ProbeHandler",
    {1: ("exec", "ptr", EXEC_ACTION), 2: ("httpGet", "ptr", HTTP_GET), 3: ("tcpSocket", "ptr", TCP_SOCKET),
     4: ("grpc", "ptr", Msg("GRPCAction", {1: ("port", "one", N), 2: ("service", "ptr", S)}))},
)  # fmt: skip
PROBE = Msg(
    "Probe",
    {1: ("", "inline", PROBE_HANDLER), 2: ("initialDelaySeconds", "one", N), 3: ("timeoutSeconds", "one", N),
     4: ("periodSeconds", "one", N), 5: ("successThreshold", "one", N), 6: ("failureThreshold", "one", N),
     7: ("terminationGracePeriodSeconds", "ptr", N)},
)  # fmt: skip
LIFECYCLE_HANDLER = Msg(
    "LifecycleHandler",
    {1: ("exec", "ptr", EXEC_ACTION), 2: ("httpGet", "ptr", HTTP_GET), 3: ("tcpSocket", "ptr", TCP_SOCKET),
     4: ("sleep", "ptr", Msg("SleepAction", {1: ("seconds", "one", N)}))},
)  # fmt: skip
LIFECYCLE = Msg("Lifecycle", {1: ("postStart", "ptr", LIFECYCLE_HANDLER), 2: ("preStop", "ptr", LIFECYCLE_HANDLER)})
SE_LINUX_OPTIONS = Msg(
    "SELinuxOptions", {1: ("user", "one", S), 2: ("role", "one", S), 3: ("type", "one", S), 4: ("level", "one", S)}
)
SECCOMP_PROFILE = Msg("SeccompProfile", {1: ("type", "one", S), 2: ("localhostProfile", "ptr", S)})
SECURITY_CONTEXT = Msg(
    "SecurityContext",
    {1: ("capabilities", "ptr", Msg("Capabilities", {1: ("add", "list", S), 2: ("drop", "list", S)})),
     2: ("privileged", "ptr", B), 3: ("seLinuxOptions", "ptr", SE_LINUX_OPTIONS), 4: ("runAsUser", "ptr", N),
     5: ("runAsNonRoot", "ptr", B), 6: ("readOnlyRootFilesystem", "ptr", B),
     7: ("allowPrivilegeEscalation", "ptr", B), 8: ("runAsGroup", "ptr", N), 9: ("procMount", "ptr", S),
     11: ("seccompProfile", "ptr", SECCOMP_PROFILE)},
)  # fmt: skip
POD_SECURITY_CONTEXT = Msg(
    "PodSecurityContext",
    {1: ("seLinuxOptions", "ptr", SE_LINUX_OPTIONS), 2: ("runAsUser", "ptr", N), 3: ("runAsNonRoot", "ptr", B),
     4: ("supplementalGroups", "list", N), 5: ("fsGroup", "ptr", N), 6: ("runAsGroup", "ptr", N),
     7: ("sysctls", "list", Msg("Sysctl", {1: ("name", "one", S), 2: ("value", "one", S)})),
     9: ("fsGroupChangePolicy", "ptr", S), 10: ("seccompProfile", "ptr", SECCOMP_PROFILE)},
)  # fmt: skip
CONTAINER = Msg(
    "Container",
    {1: ("name", "one", S), 2: ("image", "one", S), 3: ("command", "list", S), 4: ("args", "list", S),
     5: ("workingDir", "one", S), 6: ("ports", "list", CONTAINER_PORT), 7: ("env", "list", ENV_VAR),
     8: ("resources", "one", RESOURCE_REQUIREMENTS), 9: ("volumeMounts", "list", VOLUME_MOUNT),
     10: ("livenessProbe", "ptr", PROBE), 11: ("readinessProbe", "ptr", PROBE), 12: ("lifecycle", "ptr", LIFECYCLE),
     13: ("terminationMessagePath", "one", S), 14: ("imagePullPolicy", "one", S),
     15: ("securityContext", "ptr", SECURITY_CONTEXT), 16: ("stdin", "one", B), 17: ("stdinOnce", "one", B),
     18: ("tty", "one", B), 19: ("envFrom", "list", ENV_FROM_SOURCE), 20: ("terminationMessagePolicy", "one", S),
     21: ("volumeDevices", "list", Msg("VolumeDevice", {1: ("name", "one", S), 2: ("devicePath", "one", S)})),
     22: ("startupProbe", "ptr", PROBE), 24: ("restartPolicy", "ptr", S)},
)  # fmt: skip
VOLUME_SOURCE = Msg(
    "VolumeSource",
    {1: ("hostPath", "ptr", Msg("HostPathVolumeSource", {1: ("path", "one", S), 2: ("type", "ptr", S)})),
     2: ("emptyDir", "ptr", Msg("EmptyDirVolumeSource", {1: ("medium", "one", S), 2: ("sizeLimit", "ptr", _quantity)})),
     6: ("secret", "ptr", Msg("SecretVolumeSource",
         {1: ("secretName", "one", S), 2: ("items", "list", KEY_TO_PATH), 3: ("defaultMode", "ptr", N),
          4: ("optional", "ptr", B)})),
     7: ("nfs", "ptr", Msg("NFSVolumeSource",
         {1: ("server", "one", S), 2: ("path", "one", S), 3: ("readOnly", "one", B)})),
     10: ("persistentVolumeClaim", "ptr", Msg("PersistentVolumeClaimVolumeSource",
          {1: ("claimName", "one", S), 2: ("readOnly", "one", B)})),
     16: ("downwardAPI", "ptr", Msg("DownwardAPIVolumeSource",
          {1: ("items", "list", Msg("DownwardAPIVolumeFile",
               {1: ("path", "one", S), 2: ("fieldRef", "ptr", OBJECT_FIELD_SELECTOR),
                3: ("resourceFieldRef", "ptr", RESOURCE_FIELD_SELECTOR), 4: ("mode", "ptr", N)})),
           2: ("defaultMode", "ptr", N)})),
     19: ("configMap", "ptr", Msg("ConfigMapVolumeSource",
          {1: ("", "inline", LOCAL_OBJECT_REFERENCE), 2: ("items", "list", KEY_TO_PATH),
           3: ("defaultMode", "ptr", N), 4: ("optional", "ptr", B)})),
     26: ("projected", "ptr", Msg("ProjectedVolumeSource",
          {1: ("sources", "list", Msg("VolumeProjection",
               {1: ("secret", "ptr", _projection("SecretProjection")),
                2: ("downwardAPI", "ptr", Msg("DownwardAPIProjection", {1: ("items", "list", Msg(
                    "DownwardAPIVolumeFile", {1: ("path", "one", S), 2: ("fieldRef", "ptr", OBJECT_FIELD_SELECTOR),
                                              4: ("mode", "ptr", N)}))})),
                3: ("configMap", "ptr", _projection("ConfigMapProjection")),
                4: ("serviceAccountToken", "ptr", Msg("ServiceAccountTokenProjection",
                    {1: ("audience", "one", S), 2: ("expirationSeconds", "ptr", N), 3: ("path", "one", S)}))})),
           2: ("defaultMode", "ptr", N)}))},
)  # fmt: skip
VOLUME = Msg("Volume", {1: ("name", "one", S), 2: ("", "inline", VOLUME_SOURCE)})
TOLERATION = Msg(
    "Toleration",
    {1: ("key", "one", S), 2: ("operator", "one", S), 3: ("value", "one", S), 4: ("effect", "one", S),
     5: ("tolerationSeconds", "ptr", N)},
)  # fmt: skip
POD_SPEC = Msg(
    "PodSpec",
    {1: ("volumes", "list", VOLUME), 2: ("containers", "list", CONTAINER), 3: ("restartPolicy", "one", S),
     4: ("terminationGracePeriodSeconds", "ptr", N), 5: ("activeDeadlineSeconds", "ptr", N),
     6: ("dnsPolicy", "one", S), 7: ("nodeSelector", "map", S), 8: ("serviceAccountName", "one", S),
     9: ("serviceAccount", "one", S), 10: ("nodeName", "one", S), 11: ("hostNetwork", "one", B),
     12: ("hostPID", "one", B), 13: ("hostIPC", "one", B), 14: ("securityContext", "ptr", POD_SECURITY_CONTEXT),
     15: ("imagePullSecrets", "list", LOCAL_OBJECT_REFERENCE), 16: ("hostname", "one", S),
     17: ("subdomain", "one", S), 19: ("schedulerName", "one", S), 20: ("initContainers", "list", CONTAINER),
     21: ("automountServiceAccountToken", "ptr", B), 22: ("tolerations", "list", TOLERATION),
     23: ("hostAliases", "list", Msg("HostAlias", {1: ("ip", "one", S), 2: ("hostnames", "list", S)})),
     24: ("priorityClassName", "one", S), 25: ("priority", "ptr", N),
     26: ("dnsConfig", "ptr", Msg("PodDNSConfig",
          {1: ("nameservers", "list", S), 2: ("searches", "list", S),
           3: ("options", "list", Msg("PodDNSConfigOption", {1: ("name", "one", S), 2: ("value", "ptr", S)}))})),
     27: ("shareProcessNamespace", "ptr", B),
     28: ("readinessGates", "list", Msg("PodReadinessGate", {1: ("conditionType", "one", S)})),
     29: ("runtimeClassName", "ptr", S), 30: ("enableServiceLinks", "ptr", B), 31: ("preemptionPolicy", "ptr", S),
     35: ("setHostnameAsFQDN", "ptr", B)},
)  # fmt: skip
POD_TEMPLATE_SPEC = Msg("PodTemplateSpec", {1: ("metadata", "one", OBJECT_META), 2: ("spec", "one", POD_SPEC)})
POD = Msg("Pod", {1: ("metadata", "one", OBJECT_META), 2: ("spec", "one", POD_SPEC)})
SERVICE = Msg(
    "Service",
    {1: ("metadata", "one", OBJECT_META),
     2: ("spec", "one", Msg("ServiceSpec",
         {1: ("ports", "list", Msg("ServicePort",
              {1: ("name", "one", S), 2: ("protocol", "one", S), 3: ("port", "one", N),
               4: ("targetPort", "one", _int_or_string), 5: ("nodePort", "one", N), 6: ("appProtocol", "ptr", S)})),
          2: ("selector", "map", S), 3: ("clusterIP", "one", S), 4: ("type", "one", S),
          5: ("externalIPs", "list", S), 7: ("sessionAffinity", "one", S), 8: ("loadBalancerIP", "one", S),
          9: ("loadBalancerSourceRanges", "list", S), 10: ("externalName", "one", S),
          11: ("externalTrafficPolicy", "one", S), 12: ("healthCheckNodePort", "one", N),
          13: ("publishNotReadyAddresses", "one", B), 17: ("ipFamilyPolicy", "ptr", S), 18: ("clusterIPs", "list", S),
          19: ("ipFamilies", "list", S), 20: ("allocateLoadBalancerNodePorts", "ptr", B),
          21: ("loadBalancerClass", "ptr", S), 22: ("internalTrafficPolicy", "ptr", S)}))},
)  # fmt: skip
SERVICE_ACCOUNT = Msg(
    "ServiceAccount",
    {1: ("metadata", "one", OBJECT_META), 2: ("secrets", "list", OBJECT_REFERENCE),
     3: ("imagePullSecrets", "list", LOCAL_OBJECT_REFERENCE), 4: ("automountServiceAccountToken", "ptr", B)},
)  # fmt: skip

# k8s.io/api apps/v1 and batch/v1: field numbers from the protobuf tags in their types.go
DEPLOYMENT = Msg(
    "Deployment",
    {1: ("metadata", "one", OBJECT_META),
     2: ("spec", "one", Msg("DeploymentSpec",
         {1: ("replicas", "ptr", N), 2: ("selector", "ptr", LABEL_SELECTOR), 3: ("template", "one", POD_TEMPLATE_SPEC),
          4: ("strategy", "one", Msg("DeploymentStrategy",
              {1: ("type", "one", S), 2: ("rollingUpdate", "ptr", Msg("RollingUpdateDeployment",
                  {1: ("maxUnavailable", "ptr", _int_or_string), 2: ("maxSurge", "ptr", _int_or_string)}))})),
          5: ("minReadySeconds", "one", N), 6: ("revisionHistoryLimit", "ptr", N), 7: ("paused", "one", B),
          9: ("progressDeadlineSeconds", "ptr", N)}))},
)  # fmt: skip
JOB_SPEC = Msg(
    "JobSpec",
    {1: ("parallelism", "ptr", N), 2: ("completions", "ptr", N), 3: ("activeDeadlineSeconds", "ptr", N),
     4: ("selector", "ptr", LABEL_SELECTOR), 5: ("manualSelector", "ptr", B), 6: ("template", "one", POD_TEMPLATE_SPEC),
     7: ("backoffLimit", "ptr", N), 8: ("ttlSecondsAfterFinished", "ptr", N), 9: ("completionMode", "ptr", S),
     10: ("suspend", "ptr", B), 12: ("backoffLimitPerIndex", "ptr", N), 13: ("maxFailedIndexes", "ptr", N),
     14: ("podReplacementPolicy", "ptr", S)},
)  # fmt: skip
JOB = Msg("Job", {1: ("metadata", "one", OBJECT_META), 2: ("spec", "one", JOB_SPEC)})
CRON_JOB = Msg(
    "CronJob",
    {1: ("metadata", "one", OBJECT_META),
     2: ("spec", "one", Msg("CronJobSpec",
         {1: ("schedule", "one", S), 2: ("startingDeadlineSeconds", "ptr", N), 3: ("concurrencyPolicy", "one", S),
          4: ("suspend", "ptr", B),
          5: ("jobTemplate", "one", Msg("JobTemplateSpec",
              {1: ("metadata", "one", OBJECT_META), 2: ("spec", "one", JOB_SPEC)})),
          6: ("successfulJobsHistoryLimit", "ptr", N), 7: ("failedJobsHistoryLimit", "ptr", N),
          8: ("timeZone", "ptr", S)}))},
)  # fmt: skip

# rbac.authorization.k8s.io/v1, policy/v1, networking.k8s.io/v1
POLICY_RULE = Msg(
    "PolicyRule",
    {1: ("verbs", "list", S), 2: ("apiGroups", "list", S), 3: ("resources", "list", S),
     4: ("resourceNames", "list", S), 5: ("nonResourceURLs", "list", S)},
)  # fmt: skip
SUBJECT = Msg(
    "Subject", {1: ("kind", "one", S), 2: ("apiGroup", "one", S), 3: ("name", "one", S), 4: ("namespace", "one", S)}
)
ROLE_REF = Msg("RoleRef", {1: ("apiGroup", "one", S), 2: ("kind", "one", S), 3: ("name", "one", S)})
ROLE = Msg("Role", {1: ("metadata", "one", OBJECT_META), 2: ("rules", "list", POLICY_RULE)})
CLUSTER_ROLE = Msg(
    "ClusterRole",
    {1: ("metadata", "one", OBJECT_META), 2: ("rules", "list", POLICY_RULE),
     3: ("aggregationRule", "ptr", Msg("AggregationRule", {1: ("clusterRoleSelectors", "list", LABEL_SELECTOR)}))},
)  # fmt: skip
ROLE_BINDING = Msg(
    "RoleBinding",
    {1: ("metadata", "one", OBJECT_META), 2: ("subjects", "list", SUBJECT), 3: ("roleRef", "one", ROLE_REF)},
)
POD_DISRUPTION_BUDGET = Msg(
    "PodDisruptionBudget",
    {1: ("metadata", "one", OBJECT_META),
     2: ("spec", "one", Msg("PodDisruptionBudgetSpec",
         {1: ("minAvailable", "ptr", _int_or_string), 2: ("selector", "ptr", LABEL_SELECTOR),
          3: ("maxUnavailable", "ptr", _int_or_string), 4: ("unhealthyPodEvictionPolicy", "ptr", S)}))},
)  # fmt: skip
INGRESS_BACKEND = Msg(
    "IngressBackend",
    {3: ("resource", "ptr", Msg("TypedLocalObjectReference",
         {1: ("apiGroup", "ptr", S), 2: ("kind", "one", S), 3: ("name", "one", S)})),
     4: ("service", "ptr", Msg("IngressServiceBackend",
         {1: ("name", "one", S),
          2: ("port", "one", Msg("ServiceBackendPort", {1: ("name", "one", S), 2: ("number", "one", N)}))}))},
)  # fmt: skip
INGRESS = Msg(
    "Ingress",
    {1: ("metadata", "one", OBJECT_META),
     2: ("spec", "one", Msg("IngressSpec",
         {1: ("defaultBackend", "ptr", INGRESS_BACKEND),
          2: ("tls", "list", Msg("IngressTLS", {1: ("hosts", "list", S), 2: ("secretName", "one", S)})),
          3: ("rules", "list", Msg("IngressRule",
              {1: ("host", "one", S),
               2: ("", "inline", Msg("IngressRuleValue",
                   {1: ("http", "ptr", Msg("HTTPIngressRuleValue",
                       {1: ("paths", "list", Msg("HTTPIngressPath",
                           {1: ("path", "one", S), 2: ("backend", "one", INGRESS_BACKEND),
                            3: ("pathType", "ptr", S)}))}))}))})),
          4: ("ingressClassName", "ptr", S)}))},
)  # fmt: skip

# (apiVersion, kind) -> message. DeleteOptions is registered in every group version, so it is
# matched by kind alone.
KINDS: dict[tuple[str, str], Msg] = {
    ("v1", "Secret"): SECRET,
    ("v1", "ConfigMap"): CONFIG_MAP,
    ("v1", "Namespace"): NAMESPACE,
    ("v1", "Pod"): POD,
    ("v1", "Service"): SERVICE,
    ("v1", "ServiceAccount"): SERVICE_ACCOUNT,
    ("apps/v1", "Deployment"): DEPLOYMENT,
    ("batch/v1", "Job"): JOB,
    ("batch/v1", "CronJob"): CRON_JOB,
    ("rbac.authorization.k8s.io/v1", "Role"): ROLE,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): CLUSTER_ROLE,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ROLE_BINDING,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): Msg("ClusterRoleBinding", ROLE_BINDING.fields),
    ("policy/v1", "PodDisruptionBudget"): POD_DISRUPTION_BUDGET,
    ("networking.k8s.io/v1", "Ingress"): INGRESS,
}
_ANY_GROUP = {"DeleteOptions": DELETE_OPTIONS}


def _packed_varints(buf: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        v, pos = _varint(buf, pos)
        out.append(v)
    return out


def _is_zero(val: int | bytes, depth: int = 0) -> bool:
    """True for 0, b"" and messages made only of zero values (gogo writes non-pointer structs whole)."""
    if isinstance(val, int):
        return val == 0
    if not val:
        return True
    if depth > 16:
        return False
    try:
        return all(_is_zero(v, depth + 1) for _, _, v in iter_fields(val))
    except ProtobufDecodeError:
        return False  # not a message: a non-empty string or bytes value


def _decode_message(buf: bytes, msg: Msg) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for num, _, val in iter_fields(buf):
        spec = msg.fields.get(num)
        if spec is None:
            if _is_zero(val):
                continue  # a zero value gogo writes for a field the JSON form would omit (empty status …)
            raise UnsupportedProtobuf(f"protobuf field {num} of {msg.name} is not supported by this sandbox")
        name, kind, conv = spec
        if kind == "ptr":
            out[name] = conv(val)
        elif kind == "one":
            value = conv(val)
            if value is None or (isinstance(value, str | int) and not value):
                out.pop(name, None)  # last occurrence wins, and a zero value is "unset"
            else:
                out[name] = value
        elif kind == "list":
            if conv is N and isinstance(val, bytes):
                out.setdefault(name, []).extend(N(v) for v in _packed_varints(val))
            else:
                out.setdefault(name, []).append(conv(val))
        elif kind == "inline":
            out.update(conv(val))
        else:
            k, raw = _map_entry(val)
            out.setdefault(name, {})[k] = conv(raw)
    return out


def decode_unknown(body: bytes) -> tuple[str, str, bytes]:
    """Split the envelope: return (apiVersion, kind, raw inner message bytes)."""
    if not body.startswith(MAGIC):
        raise ProtobufDecodeError("missing k8s protobuf magic prefix")
    api_version = kind = ""
    raw = b""
    content_encoding = ""
    for num, _, val in iter_fields(body[len(MAGIC) :]):
        if num == 1:  # TypeMeta {apiVersion=1, kind=2}
            for tnum, _, tval in iter_fields(_bytes(val)):
                if tnum == 1:
                    api_version = _str(tval)
                elif tnum == 2:
                    kind = _str(tval)
        elif num == 2:
            raw = _bytes(val)
        elif num == 3:
            content_encoding = _str(val)
    if content_encoding:
        raise UnsupportedProtobuf(f"protobuf contentEncoding {content_encoding!r} is not supported")
    return api_version, kind, raw


def decode_protobuf(body: bytes) -> dict[str, Any]:
    """Decode a ``k8s\\x00``-prefixed protobuf body into its JSON-equivalent dict."""
    api_version, kind, raw = decode_unknown(body)
    msg = _ANY_GROUP.get(kind) or KINDS.get((api_version, kind))
    if msg is None:
        raise UnsupportedProtobuf(f"protobuf body of kind {api_version or '?'}/{kind or '?'} is not supported")
    obj: dict[str, Any] = {"apiVersion": api_version or "meta.k8s.io/v1", "kind": kind}
    obj.update(_decode_message(raw, msg))
    return obj
