"""HTTP routing for the sandbox: maps Kubernetes API URLs to :mod:`kubesim.api` calls.

Serves ``/version``, ``/healthz``, discovery (``/api``, ``/apis``, ``/api/v1``, ``/apis/G[/V]``,
aggregated ``apidiscovery.k8s.io/v2`` when the Accept header asks for it), OpenAPI
(``/openapi/v2``, ``/openapi/v3[/…]``), resource URLs (``/api/v1/[namespaces/NS/]RES[/NAME[/SUB]]``
and the same under ``/apis/G/V``) and the control API (``/_sandbox/…``, see :mod:`kubesim.control`).

Request bodies may be JSON, YAML or Kubernetes protobuf (what helm's typed clients send);
responses are always JSON, which every client accepts. Watches stream newline-delimited
``{"type", "object"}`` events. Every error is a ``v1.Status`` with the apiserver's code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from kubesim import errors, selectors
from kubesim.api import CRDS, Target, is_true
from kubesim.codecs import CONTENT_TYPE as PROTOBUF
from kubesim.codecs import MAGIC, ProtobufDecodeError, UnsupportedProtobuf, decode_protobuf
from kubesim.patching import PATCH_TYPES
from kubesim.sim import Simulator
from kubesim.store import Event, Watcher
from kubesim.tables import crd_columns, to_table

log = logging.getLogger(__name__)
Obj = dict[str, Any]

VERSION = {"major": "1", "minor": "35", "emulationMajor": "1", "emulationMinor": "35",
           "minCompatibilityMajor": "1", "minCompatibilityMinor": "34", "gitVersion": "v1.35.0-kubesim",
           "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc",
           "platform": "linux/amd64"}
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# A watch without timeoutSeconds ends after this long, like the apiserver's min-request-timeout.
DEFAULT_WATCH_TIMEOUT = 1800.0
BOOKMARK_INTERVAL = 1.0


def pod_log(pod: Obj, container: str | None) -> str:
    """Nothing really runs: the log says what would have run, and how it ended."""
    containers = (pod.get("spec") or {}).get("containers") or []
    chosen = next((c for c in containers if c.get("name") == container), containers[0] if containers else {})
    command = " ".join([*(chosen.get("command") or []), *(chosen.get("args") or [])]) or "<image entrypoint>"
    phase = (pod.get("status") or {}).get("phase", "Pending")
    return f"kubesim: container {chosen.get('name')} (image {chosen.get('image')}) runs: {command}\n" \
           f"kubesim: pod phase {phase}\n"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def json_response(code: int, body: Any, content_type: str = "application/json") -> Response:
    return Response(body if isinstance(body, bytes) else dumps(body), status_code=code, media_type=content_type)


def error_response(exc: errors.ApiError) -> Response:
    return json_response(exc.code, exc.status())


class Router:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    # --- entry -----------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        try:
            if path.startswith("/_sandbox/"):
                response = await self.control(request, path)
            else:
                response = await self.kube(request, path)
        except errors.ApiError as exc:
            response = error_response(exc)
        except Exception as exc:  # a sandbox bug must still answer like an apiserver, and be visible
            log.exception("internal error on %s %s", request.method, path)
            response = error_response(errors.ApiError(500, "InternalError", f"sandbox internal error: {exc!r}"))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s?%s %s [%s] %s", request.method, path, request.url.query, response.status_code,
                      request.headers.get("content-type", ""), request.headers.get("accept", ""))
        return response

    async def kube(self, request: Request, path: str) -> Response:
        parts = [p for p in path.split("/") if p]
        method = request.method
        if parts and parts[0] in ("api", "apis") and self._is_resource_path(parts):
            return await self.resource(request, parts)
        self.sim.control.record("get", None)
        if method != "GET":
            raise errors.method_not_allowed()
        if path in ("/healthz", "/readyz", "/livez"):
            return Response(b"ok", media_type="text/plain")
        if path == "/version":
            return json_response(200, VERSION)
        if parts and parts[0] == "openapi":
            return self.openapi(request, parts)
        accept = request.headers.get("accept", "")
        aggregated = "as=APIGroupDiscoveryList" in accept and "v=v2" in accept
        registry = self.sim.registry
        if parts == ["api"]:
            if aggregated:
                return json_response(200, registry.aggregated(core=True), AGGREGATED)
            return json_response(200, registry.api_versions())
        if parts == ["apis"]:
            if aggregated:
                return json_response(200, registry.aggregated(core=False), AGGREGATED)
            return json_response(200, registry.api_group_list())
        if len(parts) == 2 and parts[0] == "api":
            doc = registry.resource_list("", parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = registry.resource_list(parts[1], parts[2])
        elif len(parts) == 2 and parts[0] == "apis":
            groups = [g for g in registry.api_group_list()["groups"] if g["name"] == parts[1]]
            doc = {"kind": "APIGroup", "apiVersion": "v1", **groups[0]} if groups else None
        else:
            doc = None
        if doc is None:
            raise errors.path_not_found(path)
        return json_response(200, doc)

    def openapi(self, request: Request, parts: list[str]) -> Response:
        oa = self.sim.openapi
        if parts == ["openapi", "v2"]:
            return json_response(200, oa.v2_document_bytes())
        if parts == ["openapi", "v3"]:
            return json_response(200, oa.v3_index_bytes())
        if len(parts) > 2 and parts[1] == "v3":
            data = oa.v3_document_bytes("/".join(parts[2:]))
            if data is not None:
                return json_response(200, data)
        raise errors.path_not_found(request.url.path)

    @staticmethod
    def _is_resource_path(parts: list[str]) -> bool:
        return (parts[0] == "api" and len(parts) >= 3) or (parts[0] == "apis" and len(parts) >= 4)

    # --- resources -------------------------------------------------------------------------------

    def _target(self, parts: list[str]) -> Target:
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        namespace: str | None = None
        if group == "" and rest[0] == "namespaces" and len(rest) == 3 and rest[2] in ("status", "finalize"):
            pass  # a subresource of a Namespace, not a resource inside one
        elif rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise errors.path_not_found("/" + "/".join(parts))
        rt = self.sim.registry.lookup(group, version, rest[0])
        if rt is None:
            raise errors.path_not_found("/" + "/".join(parts))
        if namespace is not None and not rt.namespaced:
            raise errors.path_not_found("/" + "/".join(parts))
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in rt.subresources:
            raise errors.path_not_found("/" + "/".join(parts))
        return Target(rt, namespace, name, sub)

    async def resource(self, request: Request, parts: list[str]) -> Response:
        method = request.method
        query: dict[str, str] = dict(request.query_params)
        # The apiserver names an ordinary write's field manager after the client binary.
        query["managerFromUserAgent"] = request.headers.get("user-agent", "unknown").split("/")[0]
        verb = _VERBS.get(method, "unknown")
        try:
            target = self._target(parts)
        except errors.ApiError:
            self.sim.control.record(verb, None)
            raise
        rt = target.rt
        resource = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
        if method == "GET" and target.name is None:
            verb = "watch" if is_true(query.get("watch")) else "list"
        elif method == "DELETE" and target.name is None:
            verb = "deletecollection"
        self.sim.control.record(verb, resource)
        latency = self.sim.control.before_request(verb, rt.group, rt.plural, target.namespace or "",
                                                  target.name or "")
        if latency:
            await asyncio.sleep(latency)
        api = self.sim.api
        as_table = "as=Table" in request.headers.get("accept", "")
        if verb == "get":
            if target.subresource == "log":
                _, pod = api.get(Target(rt, target.namespace, target.name))
                return Response(pod_log(pod, query.get("container")).encode(), media_type="text/plain")
            code, obj = api.get(target)
            if as_table and target.subresource is None:
                return json_response(code, to_table(rt.group, rt.kind, [obj], obj["metadata"].get(
                    "resourceVersion", ""), columns_override=self._printer_columns(target)))
            return json_response(code, obj)
        if verb == "list":
            code, listed = api.list(target, query)
            if as_table:
                meta = listed["metadata"]
                return json_response(code, to_table(rt.group, rt.kind, listed["items"], meta["resourceVersion"],
                                                    meta.get("continue"), self._printer_columns(target)))
            return json_response(code, listed)
        if verb == "watch":
            return await self.watch(target, query)
        if verb == "create":
            try:
                body = await self._body(request)
            except errors.ApiError as exc:
                # Access reviews are always allowed, so their content does not matter: accept the
                # protobuf ones kubectl sends even where the decoder does not model them.
                if exc.code != 415 or rt.group != "authorization.k8s.io":
                    raise
                body = {"apiVersion": rt.group_version, "kind": rt.kind}
            return json_response(*api.create(target, body, query))
        if verb == "update":
            if target.subresource == "scale":
                return json_response(*api.update_scale(target, await self._body(request), query))
            return json_response(*api.update(target, await self._body(request), query))
        if verb == "patch":
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            if content_type not in PATCH_TYPES:
                raise errors.unsupported_media_type(content_type)
            if target.name is None:
                raise errors.method_not_allowed()
            return json_response(*api.patch(target, content_type, await request.body(), query))
        if verb in ("delete", "deletecollection"):
            options = await self._body(request, optional=True) or {}
            if not isinstance(options, dict):
                raise errors.bad_request("DeleteOptions must be an object")
            if verb == "delete":
                return json_response(*api.delete(target, options, query))
            return json_response(*api.delete_collection(target, options, query))
        raise errors.method_not_allowed()

    def _printer_columns(self, target: Target) -> Any:
        if not target.rt.crd:
            return None
        crd = self.sim.store.get(CRDS, "", f"{target.rt.plural}.{target.rt.group}")
        return crd_columns(crd, target.rt.version)

    async def _body(self, request: Request, optional: bool = False) -> Any:
        raw = await request.body()
        if not raw:
            if optional:
                return None
            raise errors.bad_request("the request body is empty")
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if content_type == PROTOBUF or raw[:4] == MAGIC:
            try:
                return decode_protobuf(raw)
            except ProtobufDecodeError as exc:
                raise errors.bad_request(f"error decoding protobuf body: {exc}") from exc
            except UnsupportedProtobuf as exc:
                raise errors.unsupported_media_type(f"{content_type} ({exc})") from exc
        if content_type in ("application/yaml", "application/x-yaml", "text/yaml"):
            try:
                return yaml.load(raw, Loader=yaml.CSafeLoader)
            except yaml.YAMLError as exc:
                raise errors.bad_request(f"error decoding YAML: {exc}") from exc
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc

    # --- watch -----------------------------------------------------------------------------------

    async def watch(self, target: Target, query: Mapping[str, str]) -> Response:
        rt = target.rt
        label_sel = selectors.parse_label_selector(query.get("labelSelector"))
        field_sel = selectors.parse_field_selector(query.get("fieldSelector"), rt.group, rt.plural)
        accept = selectors.make_filter(label_sel, field_sel)
        if target.name:  # the legacy ".../NAME?watch=true" form
            name = target.name
            base = accept
            accept = lambda o: base(o) and o["metadata"].get("name") == name  # noqa: E731
        rv_text = query.get("resourceVersion") or ""
        send_initial = is_true(query.get("sendInitialEvents"))
        since: int | None = None
        if rv_text not in ("", "0") and not send_initial:
            if not rv_text.isdigit():
                raise errors.bad_request(f"invalid resource version: {rv_text}")
            since = int(rv_text)
        bookmarks = is_true(query.get("allowWatchBookmarks"))
        try:
            timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError as exc:
            raise errors.bad_request(f"invalid timeoutSeconds: {query.get('timeoutSeconds')}") from exc
        watcher = Watcher(target.gr, target.namespace, lambda o: True, asyncio.get_running_loop())
        try:
            initial = self.sim.store.watch(watcher, since)
        except errors.ApiError as exc:
            # A watch reports "too old" as an ERROR event on a 200 stream, as the apiserver does.
            return json_response(200, {"type": "ERROR", "object": exc.status()})
        store = self.sim.store

        def encode(event_type: str, obj: Obj) -> bytes:
            out = obj
            if obj.get("apiVersion") != rt.group_version or obj.get("kind") != rt.kind:
                out = {**obj, "apiVersion": rt.group_version, "kind": rt.kind}
            return dumps({"type": event_type, "object": out}) + b"\n"

        def bookmark(rv: int, initial_end: bool = False) -> bytes:
            meta: Obj = {"resourceVersion": str(rv)}
            if initial_end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            return dumps({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.group_version,
                                                         "metadata": meta}}) + b"\n"

        def translate(event: Event) -> bytes | None:
            now_in = accept(event.obj)
            was_in = event.old is not None and accept(event.old)
            if event.type == "MODIFIED":
                if now_in and not was_in:
                    return encode("ADDED", event.obj)
                if was_in and not now_in:
                    return encode("DELETED", event.obj)
            if now_in:
                return encode(event.type, event.obj)
            return None

        async def stream() -> AsyncIterator[bytes]:
            deadline = time.monotonic() + timeout
            last_rv = since or store.resource_version
            try:
                chunk = b"".join(filter(None, (translate(e) if since is not None else
                                               (encode("ADDED", e.obj) if accept(e.obj) else None)
                                               for e in initial)))
                if initial:
                    last_rv = max(last_rv, max(e.rv for e in initial))
                if send_initial:
                    chunk += bookmark(store.resource_version, initial_end=True)
                yield chunk or b""
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    wait = min(remaining, BOOKMARK_INTERVAL) if bookmarks else remaining
                    try:
                        event = await asyncio.wait_for(watcher.queue.get(), wait)
                    except TimeoutError:
                        if bookmarks:
                            yield bookmark(last_rv)
                        continue
                    if event is None:
                        return
                    last_rv = event.rv
                    line = translate(event)
                    if line:
                        yield line
            finally:
                store.unwatch(watcher)

        return StreamingResponse(stream(), media_type="application/json",
                                 headers={"Transfer-Encoding": "chunked", "Cache-Control": "no-cache, private"})

    # --- control ---------------------------------------------------------------------------------

    async def control(self, request: Request, path: str) -> Response:
        control = self.sim.control
        method = request.method
        if path == "/_sandbox/stats" and method == "GET":
            return json_response(200, control.stats())
        if path == "/_sandbox/reset-stats" and method == "POST":
            return json_response(200, control.reset_stats())
        if path == "/_sandbox/config":
            if method == "PUT":
                body = await self._body(request)
                delay = body.get("ready_delay") if isinstance(body, dict) else None
                if not isinstance(delay, int | float) or delay < 0:
                    raise errors.bad_request("ready_delay must be a number >= 0")
                control.set_ready_delay(float(delay))
            if method in ("GET", "PUT"):
                return json_response(200, {"ready_delay": control.ready_delay})
        if path == "/_sandbox/faults":
            if method == "GET":
                return json_response(200, {"faults": control.faults()})
            if method == "POST":
                fault = control.add_fault(await self._body(request))
                return json_response(201, fault.__dict__)
            if method == "DELETE":
                return json_response(200, {"cleared": control.clear_faults()})
        if path.startswith("/_sandbox/faults/") and method == "DELETE":
            fault_id = path.rsplit("/", 1)[1]
            if not fault_id.isdigit() or not control.clear_faults(int(fault_id)):
                raise errors.ApiError(404, "NotFound", f"no fault {fault_id}")
            return json_response(200, {"cleared": 1})
        raise errors.path_not_found(path)


def create_app(sim: Simulator) -> Starlette:
    router = Router(sim)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sim.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            sim.stop()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", router.handle, methods=methods)], lifespan=lifespan)
