"""Lifecycle parts of the renders: keystone's key-rotation CronJob and its narrow Role, one RabbitMQ account per
service (the broker's accounts and each service's transport_url agree), the notification-queue policy, and
nova's cell mappings written as templates. The OpenStack tier runs them for real (tests/openstack)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from .layers import CLUSTERS, Component, all_components, objects, renders

pytestmark = pytest.mark.helm


def _objs(comp: Component) -> list[dict[str, Any]]:
    return objects(renders()[(comp.cluster, comp.name)])


def _comps(cluster: str) -> dict[str, Component]:
    return {c.name: c for c in all_components() if c.cluster == cluster}


KEYSTONES = [c for c in all_components() if c.name == "keystone"]


@pytest.mark.parametrize("comp", KEYSTONES, ids=[c.cluster for c in KEYSTONES])
def test_keystone_rotates_its_keys_with_a_cronjob_and_a_narrow_role(comp: Component) -> None:
    objs = _objs(comp)
    by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    cron = by[("CronJob", "keystone-key-rotation")]
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "keystone-key-rotation"
    keys = comp.values["keySecrets"]
    role = by[("Role", "keystone-key-rotation")]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"],
                              "resourceNames": [keys["fernet"], keys["credential"]], "verbs": ["get", "update"]}]
    binding = by[("RoleBinding", "keystone-key-rotation")]
    assert binding["subjects"][0]["name"] == "keystone-key-rotation"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    # The database password only through secretKeyRef; nothing else.
    env = pod["containers"][0]["env"]
    assert [e["name"] for e in env if "valueFrom" in e] == ["SECRET_DB"]
    assert all("secretKeyRef" in e["valueFrom"] for e in env if "valueFrom" in e)
    script = by[("ConfigMap", "keystone-key-rotation")]["data"]["rotate-keys.sh"]
    for command in ("fernet_rotate", "credential_migrate", "credential_rotate"):
        assert f"keystone-manage --config-file /etc/keystone/keystone.conf {command}" in script
    assert script.index("credential_migrate") < script.index("credential_rotate")
    # The API pods mount the key Secrets as whole directories (the kubelet updates those in place, not subPaths).
    api = by[("Deployment", "keystone-api")]["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in api["containers"][0]["volumeMounts"]}
    assert "subPath" not in mounts["fernet-keys"] and "subPath" not in mounts["credential-keys"]
    for obj in objs:
        assert not any(k.startswith("helm.sh/hook") for k in (obj["metadata"].get("annotations") or {})), obj


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_every_service_has_its_own_rabbitmq_account(cluster: str) -> None:
    comps = _comps(cluster)
    users: dict[str, str] = {}
    for name, comp in comps.items():
        messaging = comp.values.get("messaging")
        if not messaging:
            continue
        assert messaging["user"] not in users, f"{cluster}: {name} and {users.get(messaging['user'])} share a user"
        users[messaging["user"]] = name
        ref = comp.values["secrets"][messaging["secret"]]
        for obj in _objs(comp):
            for container in ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers", []):
                env = {e["name"]: e for e in container.get("env") or []}
                if "OS_DEFAULT__TRANSPORT_URL" in env:
                    secret = "SECRET_" + messaging["secret"].upper()
                    url = env["OS_DEFAULT__TRANSPORT_URL"]["value"]
                    assert url.startswith(f"rabbit://{messaging['user']}:$({secret})@"), url
                    assert url.endswith("/" + messaging.get("vhost", "")), url
                    assert env[secret]["valueFrom"]["secretKeyRef"] == ref
        if "rabbitmq" in comps:  # an in-cluster broker creates the account, with the same Secret
            broker = comps["rabbitmq"].values
            account = broker["accounts"][name]
            assert (account["user"], account["vhost"]) == (messaging["user"], messaging["vhost"]), (name, account)
            assert broker["bootstrap"]["secrets"][account["secret"]] == ref, (name, account)
    if "rabbitmq" in comps:
        broker = comps["rabbitmq"].values
        assert set(broker["accounts"]) == set(users.values()), f"{cluster}: accounts for services it does not run"
        step = next(s for s in comps["rabbitmq"].bootstrap if s["name"] == "rabbitmq-init")
        assert step["when"] == "after"
        for account in broker["accounts"].values():
            assert f'"{account["user"]}", "{account["vhost"]}"' in step["rendered"]
        assert '"max-length": 10000' in step["rendered"] and '"message-ttl": 3600000' in step["rendered"]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_notifications_are_off_unless_enabled(cluster: str) -> None:
    for comp in _comps(cluster).values():
        if comp.values.get("messaging") and not (comp.values.get("notifications") or {}).get("enabled"):
            etc = [o for o in _objs(comp) if o["kind"] == "Secret" and o["metadata"]["name"].endswith("-etc")]
            text = "\n".join(base64.b64decode(v).decode() for v in etc[0]["data"].values())
            assert "driver = messagingv2" not in text and "driver = noop" in text, comp.name


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_cell_mappings_are_written_as_templates(cluster: str) -> None:
    nova = _comps(cluster).get("nova")
    if nova is None:
        pytest.skip(f"{cluster} runs no nova")
    for step in nova.bootstrap:
        if step["name"] in ("map-cell0", "create-cell1"):
            assert "--database_connection '{scheme}://{username}:{password}@{hostname}:{port}/{path}" in \
                step["rendered"] or "db_template='{scheme}://{username}:{password}@" in step["rendered"], step["name"]
