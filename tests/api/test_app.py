"""App-wide behaviour: OpenAPI describes the real responses, JSON errors everywhere, health, metrics, HTML."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from deploy_manager.api import create_app
from deploy_manager.config import Settings
from deploy_manager.store.sqlite import RunStore
from tests.api.conftest import Service, ServiceFactory
from tests.servicelib import READ_TOKEN, WEBHOOK_SECRET, WRITE_TOKEN, StandInPipeline, github_headers, push_payload


def test_openapi_lists_every_endpoint_with_its_response_model(service: Service) -> None:
    with service.server.client() as c:
        spec = c.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ["/hooks/github", "/hooks/jenkins", "/runs", "/runs/{run_id}", "/releases", "/releases/{name}",
                 "/plan", "/healthz", "/readyz", "/metrics", "/"]:
        assert path in paths, path
    schemas = spec["components"]["schemas"]
    assert set(schemas["ReleaseOut"]["properties"]) >= {"component", "release", "digest", "healthy", "last_run_id"}
    assert schemas["TriggerResponse"]["properties"]["status"]["enum"] == ["queued", "coalesced", "ignored"]
    releases_200 = paths["/releases"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert releases_200["items"]["$ref"].endswith("/ReleaseOut")
    assert "202" in paths["/hooks/github"]["post"]["responses"]
    assert "401" in paths["/hooks/github"]["post"]["responses"]


def test_unknown_routes_and_methods_answer_json(service: Service) -> None:
    with service.server.client(READ_TOKEN) as c:
        missing = c.get("/nope")
        method = c.delete("/releases")
    assert missing.status_code == 404 and missing.json()["detail"]
    assert method.status_code == 405 and method.json()["detail"]


def test_healthz_and_readyz(service: Service) -> None:
    with service.server.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz").json()
    assert ready == {"status": "ready", "checks": {"store": "ok", "kubernetes": "ok", "git": "ok"}}


def test_readyz_reports_an_unreachable_dependency(service: Service) -> None:
    def down() -> None:
        raise ConnectionError("connection refused")

    service.server.app.state.dm.kube_ping = down
    with service.server.client(READ_TOKEN) as c:
        r = c.get("/readyz")
        metrics = c.get("/metrics").text
    # Reported, but not a reason to leave the Service: webhooks and the status page keep answering.
    assert r.status_code == 200 and r.json()["status"] == "ready"
    assert r.json()["checks"]["kubernetes"].startswith("error: ConnectionError")
    assert 'deploy_manager_dependency_up{dependency="kubernetes"} 0.0' in metrics
    assert 'deploy_manager_dependency_up{dependency="store"} 1.0' in metrics


def test_readyz_fails_when_the_store_fails(service: Service) -> None:
    class BrokenStore:
        def list_runs(self, **kwargs: object) -> list[object]:
            raise OSError("disk I/O error")

    ctx = service.server.app.state.dm
    store, ctx.store = ctx.store, BrokenStore()
    try:
        with service.server.client() as c:
            r = c.get("/readyz")
    finally:
        ctx.store = store
    assert r.status_code == 503 and r.json()["status"] == "unavailable"
    assert r.json()["checks"]["store"].startswith("error: OSError")


def test_metrics_in_prometheus_format(service: Service) -> None:
    sha = service.commit("v1")
    body = push_payload(sha)
    with service.server.client(READ_TOKEN) as c:
        c.post("/hooks/github", content=body, headers=github_headers(body))
        service.queue.wait_idle(20)
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'deploy_manager_runs_total{result="succeeded"} 2.0' in text
    assert 'deploy_manager_webhook_requests_total{hook="github",outcome="queued"} 1.0' in text
    assert "deploy_manager_run_duration_seconds_bucket" in text
    assert "deploy_manager_helm_command_duration_seconds" in text
    assert "deploy_manager_queue_depth 0.0" in text
    assert "deploy_manager_last_success_timestamp_seconds" in text
    assert "process_resident_memory_bytes" in text


def test_the_status_page_lists_runs_and_takes_the_token_as_basic_password(service: Service) -> None:
    basic = "Basic " + base64.b64encode(f"ops:{READ_TOKEN}".encode()).decode()
    with service.server.client() as c:
        anonymous = c.get("/")
        page = c.get("/", headers={"Authorization": basic})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Basic")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "cluster dev" in page.text and "<h2>Recent runs</h2>" in page.text
    assert service.queue.deployed_commit and service.queue.deployed_commit in page.text


def test_secrets_never_appear_in_answers(service: Service) -> None:
    with service.server.client(WRITE_TOKEN) as c:
        texts = [c.get(p).text for p in ("/openapi.json", "/runs", "/releases", "/metrics", "/", "/plan", "/readyz")]
    for text in texts:
        assert WEBHOOK_SECRET not in text and WRITE_TOKEN not in text and READ_TOKEN not in text


def test_create_app_with_a_supplied_pipeline_and_no_cluster_config_runs_without_a_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    settings = Settings(repo_url=str(tmp_path), cluster="dev", state_dir=tmp_path / "state")
    store = RunStore(settings.db_path)
    try:
        app = create_app(settings, pipeline=StandInPipeline(store), store=store)
        assert app.state.dm.queue.lease is None
    finally:
        store.close()


def test_readiness_masks_credentials_of_the_repo_url(make_service: ServiceFactory, tmp_path: Path) -> None:
    url = "https://deploy:ghp_0123456789abcdefghij@127.0.0.1:9/cloud/values.git"
    svc = make_service(repo_url=url)
    with svc.server.client() as c:
        r = c.get("/readyz")
    # The clone of an unreachable remote fails; the answer says so without the token.
    assert r.status_code == 200 and r.json()["checks"]["git"].startswith("error")
    assert "ghp_0123456789abcdefghij" not in r.text


def test_the_mirror_of_the_values_repo_lives_in_settings_mirror_dir(service: Service) -> None:
    service.queue.fetch_head()
    path = service.queue.source.path  # type: ignore[attr-defined]
    assert path.parent == service.settings.mirror_dir and (path / "HEAD").is_file()


def test_the_service_reads_its_values_repo_over_https_with_dm_git_settings(
    make_service: ServiceFactory, values_repo: Path, tmp_path: Path
) -> None:
    """DM_GIT_TOKEN and DM_GIT_CA_BUNDLE reach the service's mirror (a real TLS git server on loopback)."""
    import subprocess

    from tests.source.gitservers import https_server

    token = "ghp_serviceToken0123456789abcdefghij"
    served = tmp_path / "served"
    served.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(values_repo), str(served / "values.git")], check=True)
    with https_server(served, username="x-access-token", token=token) as server:
        svc = make_service(repo_url=f"{server.url_prefix}/values.git", git_token=token, git_ca_bundle=server.ca_bundle)
        with svc.server.client() as c:
            ready = c.get("/readyz").json()
        assert ready["checks"]["git"] == "ok", ready
        mirror = svc.queue.source.path  # type: ignore[attr-defined]
        assert token not in (mirror / "config").read_text()
