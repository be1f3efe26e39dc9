"""Decode Kubernetes protobuf request bodies into the dicts the JSON API would carry.

Contract: ``decode_protobuf(body)`` takes a whole request body in the Kubernetes protobuf
serialization (4-byte magic ``k8s\\x00`` followed by a ``runtime.Unknown`` message) and returns
the object as its JSON form (``apiVersion``, ``kind``, ``metadata`` …), exactly what a client
would have sent with ``Content-Type: application/json``. Pure function, no I/O.

Only the kinds client-go's typed clients actually write to the sandbox are understood
(helm's release storage writes Secrets or ConfigMaps, ``--create-namespace`` writes a
Namespace, every typed delete sends DeleteOptions). Anything else raises
:class:`UnsupportedProtobuf` so the server can answer 415 and the client falls back to JSON;
malformed bytes raise :class:`ProtobufDecodeError` (a subclass, also a 4xx for the server).

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
# A schema maps field number -> (json name, kind, converter). kind: "one" sets the value but
# drops Go zero values (gogo-protobuf always writes non-pointer fields, JSON omits them via
# omitempty), "ptr" sets it even when zero (Go pointer fields: presence is meaningful),
# "list" appends, "map" collects map entries (converter applied to the entry value).

Conv = Callable[[int | bytes], Any]
Schema = dict[int, tuple[str, str, Conv]]


def _msg(schema: Schema) -> Conv:
    return lambda v: _decode_message(_bytes(v), schema)


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


OWNER_REFERENCE: Schema = {
    1: ("kind", "one", _str),
    3: ("name", "one", _str),
    4: ("uid", "one", _str),
    5: ("apiVersion", "one", _str),
    6: ("controller", "ptr", _bool),
    7: ("blockOwnerDeletion", "ptr", _bool),
}

MANAGED_FIELDS_ENTRY: Schema = {
    1: ("manager", "one", _str),
    2: ("operation", "one", _str),
    3: ("apiVersion", "one", _str),
    4: ("time", "one", _time),
    6: ("fieldsType", "one", _str),
    7: ("fieldsV1", "one", _fields_v1),
    8: ("subresource", "one", _str),
}

OBJECT_META: Schema = {
    1: ("name", "one", _str),
    2: ("generateName", "one", _str),
    3: ("namespace", "one", _str),
    4: ("selfLink", "one", _str),
    5: ("uid", "one", _str),
    6: ("resourceVersion", "one", _str),
    7: ("generation", "one", _int64),
    8: ("creationTimestamp", "one", _time),
    9: ("deletionTimestamp", "one", _time),
    10: ("deletionGracePeriodSeconds", "ptr", _int64),
    11: ("labels", "map", _str),
    12: ("annotations", "map", _str),
    13: ("ownerReferences", "list", _msg(OWNER_REFERENCE)),
    14: ("finalizers", "list", _str),
    17: ("managedFields", "list", _msg(MANAGED_FIELDS_ENTRY)),
}

SECRET: Schema = {
    1: ("metadata", "one", _msg(OBJECT_META)),
    2: ("data", "map", _b64),  # map<string, bytes>; JSON carries base64
    3: ("type", "one", _str),
    4: ("stringData", "map", _str),
    5: ("immutable", "ptr", _bool),
}

CONFIG_MAP: Schema = {
    1: ("metadata", "one", _msg(OBJECT_META)),
    2: ("data", "map", _str),
    3: ("binaryData", "map", _b64),
    4: ("immutable", "ptr", _bool),
}

NAMESPACE: Schema = {
    1: ("metadata", "one", _msg(OBJECT_META)),
    2: ("spec", "one", _msg({1: ("finalizers", "list", _str)})),
    3: ("status", "one", _msg({1: ("phase", "one", _str)})),
}

PRECONDITIONS: Schema = {
    1: ("uid", "ptr", _str),
    2: ("resourceVersion", "ptr", _str),
}

DELETE_OPTIONS: Schema = {
    1: ("gracePeriodSeconds", "ptr", _int64),
    2: ("preconditions", "ptr", _msg(PRECONDITIONS)),
    3: ("orphanDependents", "ptr", _bool),
    4: ("propagationPolicy", "ptr", _str),
    5: ("dryRun", "list", _str),
}

# kind -> schema. DeleteOptions is registered in every group version, so it is matched by kind
# alone; the others only in the core group ("v1").
KINDS: dict[str, Schema] = {
    "Secret": SECRET,
    "ConfigMap": CONFIG_MAP,
    "Namespace": NAMESPACE,
    "DeleteOptions": DELETE_OPTIONS,
}
_ANY_GROUP = {"DeleteOptions"}


def _decode_message(buf: bytes, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for num, _, val in iter_fields(buf):
        spec = schema.get(num)
        if spec is None:
            continue  # a field this sandbox does not model; the JSON form would carry it, we drop it
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
            out.setdefault(name, []).append(conv(val))
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
    schema = KINDS.get(kind)
    if schema is None or (kind not in _ANY_GROUP and api_version != "v1"):
        raise UnsupportedProtobuf(f"protobuf body of kind {api_version or '?'}/{kind or '?'} is not supported")
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    obj.update(_decode_message(raw, schema))
    if kind in _ANY_GROUP and not api_version:
        obj["apiVersion"] = "meta.k8s.io/v1"
    return obj
