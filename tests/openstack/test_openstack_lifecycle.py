"""Lifecycle of the running demo cloud (after test_openstack.py deployed it; pytest runs modules in name order).

- keystone's key rotation: the chart's CronJob, run as its Job would; a token issued before rotation still
  validates, new tokens work, a stored credential still decrypts after rotation + migration, twice in a row.
- RabbitMQ: every service connects as its own user to its own vhost (rabbitmq-init created them); a service's
  credentials open no other vhost.
- Notifications: nothing publishes them by default (driver noop), and the notification-queues policy bounds
  a queue that fills anyway (notifications switched on without a consumer).
- Cell mappings: the API database stores nova's URL templates, no password.
"""

from __future__ import annotations

import base64
import json
import re
import textwrap
from typing import Any

import httpx
import pytest

from . import cloud as c
from .conftest import record

pytestmark = pytest.mark.openstack

ROTATION = "keystone-key-rotation"


def _keys(cloud: c.Cloud, secret: str) -> dict[str, bytes]:
    status, body = cloud.kube_get(f"/api/v1/namespaces/openstack/secrets/{secret}")
    assert status == 200, f"Secret {secret}: HTTP {status}"
    return {k: base64.b64decode(v) for k, v in (body.get("data") or {}).items()}


def _token(cloud: c.Cloud) -> str:
    out = cloud.client("token", "issue", "-f", "json")
    assert out.returncode == 0, out.stdout + out.stderr
    return str(json.loads(out.stdout)["id"])


def _validates(cloud: c.Cloud, subject: str) -> int:
    """GET /v3/auth/tokens for `subject`, authenticated by a fresh token: 200 when keystone can still decrypt it."""
    assert cloud.netns is not None
    auth = _token(cloud)
    # To the pod's address: threads in the pod network resolve names with the machine's /etc/hosts, not the pods'.
    keystone = f"http://{cloud.pod_ips['keystone-api']}:5000/v3"
    return cloud.netns.call(lambda: httpx.get(f"{keystone}/auth/tokens", timeout=30,
                                              headers={"X-Auth-Token": auth, "X-Subject-Token": subject}).status_code)


def _rotate(cloud: c.Cloud) -> str:
    run = cloud.run_cronjob("keystone", ROTATION)
    assert run.returncode == 0, f"{ROTATION} exited {run.returncode}:\n{run.output[-4000:]}"
    for value in cloud.secret_values.values():
        assert value not in run.output, "a password appears in the rotation Job's output"
    return run.output


@pytest.mark.timeout(600)
def test_keystone_key_rotation(cloud: c.Cloud) -> None:
    keystone = cloud.rendered["keystone"].comp.values
    fernet, credential = keystone["keySecrets"]["fernet"], keystone["keySecrets"]["credential"]
    fernet_before, credential_before = _keys(cloud, fernet), _keys(cloud, credential)
    old_token = _token(cloud)
    blob = json.dumps({"access": "tier-access", "secret": "tier-secret"})
    created = cloud.client("credential", "create", "--type", "ec2", "--project", "admin", "-f", "json",
                           keystone["admin"]["user"], blob)
    assert created.returncode == 0, created.stdout + created.stderr
    cred_id = json.loads(created.stdout)["id"]

    for n in (1, 2):
        output = _rotate(cloud)
        fernet_now, credential_now = _keys(cloud, fernet), _keys(cloud, credential)
        # fernet_rotate: the staged key 0 becomes the new primary (highest index), a new key 0 is staged.
        assert len(fernet_now) == len(fernet_before) + n, (sorted(fernet_before), sorted(fernet_now))
        assert fernet_now["0"] != fernet_before["0"]
        assert fernet_now[max(fernet_now, key=int)] in fernet_before.values() or n == 2
        # credential_rotate likewise; keystone keeps 3 credential keys (the staged, the primary and one before).
        assert credential_now["0"] != credential_before["0"] and len(credential_now) == 3, sorted(credential_now)
        # The pods' volumes hold what the Secret holds (the kubelet's in-place update of a secret volume).
        assert {p.name for p in (cloud.root / "secrets" / fernet).iterdir()} == set(fernet_now)
        status = _validates(cloud, old_token)
        record("keystone", f"token issued before rotation {n} validates", str(status))
        assert status == 200, f"after rotation {n} the earlier token no longer validates: HTTP {status}\n{output}"
        new_token = _token(cloud)
        assert _validates(cloud, new_token) == 200
        shown = cloud.client("credential", "show", "-f", "json", cred_id)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert json.loads(json.loads(shown.stdout)["blob"]) == json.loads(blob), shown.stdout
        record("keystone", f"credential decrypts after credential rotation {n}", "ok")
    # Two runs: the credential was migrated onto the newer primary before the key it was encrypted with was dropped.
    credential_after = _keys(cloud, credential)
    dropped = set(credential_before.values()) - set(credential_after.values())
    record("keystone", "fernet keys before/after 2 rotations", f"{len(fernet_before)}/{len(_keys(cloud, fernet))}")
    record("keystone", "credential keys dropped by 2 rotations", str(len(dropped)))
    assert dropped, (sorted(credential_before), sorted(credential_after))
    assert cloud.client("credential", "delete", cred_id).returncode == 0


def _accounts(cloud: c.Cloud) -> dict[str, dict[str, str]]:
    """service -> its messaging values (user, vhost) for every service that has a transport_url."""
    return {s: cloud.rendered[s].comp.values["messaging"] for s in c.SERVICES
            if cloud.rendered[s].comp.values.get("messaging")}


def _transport_env(cloud: c.Cloud, service: str) -> dict[str, str]:
    for wl in cloud.rendered[service].workloads():
        container = wl["spec"]["template"]["spec"]["containers"][0]
        env = c.container_env(container, cloud.secret_values)
        if "OS_DEFAULT__TRANSPORT_URL" in env:
            return {**c.base_env(), "OS_DEFAULT__TRANSPORT_URL": env["OS_DEFAULT__TRANSPORT_URL"]}
    raise AssertionError(f"no {service} workload has a transport_url")


LOGIN = textwrap.dedent("""
    import os, sys, urllib.parse
    import kombu
    url = os.environ["OS_DEFAULT__TRANSPORT_URL"].replace("rabbit://", "amqp://", 1)  # kombu's name for it
    if len(sys.argv) > 1:  # the same credentials on another vhost
        url = urllib.parse.urlsplit(url)._replace(path="/" + sys.argv[1]).geturl()
    with kombu.Connection(url, connect_timeout=10) as conn:
        conn.ensure_connection(max_retries=1)
    print("connected")
""")


def test_rabbitmq_account_per_service(cloud: c.Cloud) -> None:
    assert cloud.netns is not None
    accounts = _accounts(cloud)
    assert {a["user"] for a in accounts.values()} == set(accounts), accounts  # one user per service
    assert len({a["vhost"] for a in accounts.values()}) == len(accounts), accounts  # and one vhost
    connections = [tuple(line.split("\t")) for line in
                   cloud.rabbitmqctl("list_connections", "--no-table-headers", "user", "vhost").splitlines() if line]
    assert connections, "no connection to RabbitMQ at all"
    by_user: dict[str, set[str]] = {}
    for user, vhost in connections:
        by_user.setdefault(user, set()).add(vhost)
    record("rabbitmq", "connections per user", ", ".join(f"{u}:{len([x for x in connections if x[0] == u])}"
                                                          for u in sorted(by_user)))
    # Every connection is a service's own user on its own vhost; the administrator's is used by nobody.
    assert set(by_user) <= {a["user"] for a in accounts.values()}, by_user
    for service, account in accounts.items():
        if account["user"] in by_user:
            assert by_user[account["user"]] == {account["vhost"]}, (service, by_user)
    # RPC users hold connections already; keystone and glance publish nothing (notifications off): log in as each.
    for service, account in accounts.items():
        env = _transport_env(cloud, service)
        own = cloud.netns.run([f"{c.VENV}/bin/python", "-c", LOGIN], env=env, timeout=60)
        assert own.returncode == 0, f"{service} cannot log in to its vhost:\n{own.stderr[-2000:]}"
        other = next(a["vhost"] for s, a in accounts.items() if s != service)
        foreign = cloud.netns.run([f"{c.VENV}/bin/python", "-c", LOGIN, other], env=env, timeout=60)
        assert foreign.returncode != 0 and "access" in foreign.stderr.lower(), \
            f"{service}'s credentials open vhost {other}:\n{foreign.stdout}{foreign.stderr[-1000:]}"
        permissions = [line.split("\t")[0] for line in
                       cloud.rabbitmqctl("list_permissions", "-p", account["vhost"], "--no-table-headers").splitlines()
                       if line]
        # Its own user and the administrator (who created the vhost), no other service.
        assert account["user"] in permissions and not set(permissions) & ({a["user"] for a in accounts.values()}
                                                                            - {account["user"]}), permissions
        record(service, "own RabbitMQ user/vhost (login ok, other vhost refused)",
               f"{account['user']}@/{account['vhost']}")
    in_use = sorted(u for u in by_user)
    record("rabbitmq", "services connected with their own user", " ".join(in_use))


NOTIFY = textwrap.dedent("""
    import os, sys
    import kombu
    import oslo_messaging
    from oslo_config import cfg
    cfg.CONF([], project="tier")
    url = os.environ["OS_DEFAULT__TRANSPORT_URL"]
    # A real messagingv2 notifier (as a service with notifications switched on): it declares notifications.info.
    transport = oslo_messaging.get_notification_transport(cfg.CONF, url=url)
    notifier = oslo_messaging.Notifier(transport, driver="messagingv2", topics=["notifications"], publisher_id="tier")
    notifier.info({}, "tier.sample", {"n": 0})
    transport.cleanup()
    # Then many more to the same queue, and no consumer.
    with kombu.Connection(url.replace("rabbit://", "amqp://", 1)) as conn:
        producer = conn.Producer()
        for n in range(int(sys.argv[1])):
            producer.publish({"n": n}, exchange="", routing_key="notifications.info")
    print("sent")
""")


@pytest.mark.timeout(300)
def test_notification_queues_are_bounded(cloud: c.Cloud) -> None:
    assert cloud.netns is not None
    policy = cloud.rendered["rabbitmq"].comp.values["notificationQueues"]
    pattern = re.compile(policy["pattern"])
    accounts = _accounts(cloud)
    # Off by default: every service's notification driver is noop, and after the workflows no queue holds any.
    for service in accounts:
        etc = cloud.rendered[service].etc()
        drivers = set(re.findall(rb"\[oslo_messaging_notifications\][^\[]*?driver = (\S+)", b"\n".join(etc.values())))
        assert drivers == {b"noop"}, (service, drivers)
    for account in accounts.values():
        queues = cloud.rabbitmqctl("list_queues", "-p", account["vhost"], "--no-table-headers", "name").split()
        assert not [q for q in queues if pattern.search(q)], (account["vhost"], queues)
        policies = cloud.rabbitmqctl("list_policies", "-p", account["vhost"], "--formatter", "json")
        assert any(p["name"] == "notification-queues" for p in json.loads(policies)), policies
    record("rabbitmq", "notification queues after the workflows (driver noop)", "0")
    # Switched on without a consumer: the queue stops at maxLength.
    service, account = next(iter(accounts.items()))
    extra = 200
    sent = cloud.netns.run([f"{c.VENV}/bin/python", "-c", NOTIFY, str(policy["maxLength"] + extra)],
                           env=_transport_env(cloud, service), timeout=240)
    assert sent.returncode == 0, sent.stderr[-3000:]
    rows = [line.split("\t") for line in cloud.rabbitmqctl(
        "list_queues", "-p", account["vhost"], "--no-table-headers", "name", "policy", "messages").splitlines()]
    queue: dict[str, Any] = {r[0]: r for r in rows if r and r[0] == "notifications.info"}
    assert queue, rows
    _, applied, messages = queue["notifications.info"]
    record("rabbitmq", f"notifications.info after {policy['maxLength'] + extra + 1} unconsumed notifications",
           f"{messages} messages (policy {applied})")
    assert applied == "notification-queues", rows
    assert int(messages) == int(policy["maxLength"]), rows
    cloud.rabbitmqctl("delete_queue", "-p", account["vhost"], "notifications.info")


def test_cell_mappings_store_no_password(cloud: c.Cloud) -> None:
    rows = [line.split("\t") for line in
            cloud.sql("SELECT name, transport_url, database_connection FROM nova_api.cell_mappings").splitlines()]
    assert {r[0] for r in rows} >= {"cell0", "cell1"}, rows
    for name, transport_url, database_connection in rows:
        for value in cloud.secret_values.values():
            assert value not in transport_url + database_connection, f"{name}: a password is stored in its mapping"
        assert "{password}" in database_connection, (name, database_connection)
        if name != "cell0":  # cell0 has no message queue (none:///)
            assert "{password}" in transport_url, (name, transport_url)
    record("nova", "cell mappings stored as templates (no password)", f"{len(rows)} cells")
    # What `nova-manage cell_v2 list_cells --verbose` prints in a nova pod: each template filled from that process's
    # own [database]/connection and transport_url (nova formats them on load), so a rotated password needs no update.
    pod = cloud.pods["nova-conductor"]
    env = {**c.base_env(), **c.container_env(pod.container, cloud.secret_values)}
    assert cloud.netns is not None
    out = cloud.netns.run(["nova-manage", "--config-file", "/etc/nova/nova.conf", "cell_v2", "list_cells", "--verbose"],
                          mounts=pod.mounts, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "cell1" in out.stdout and "{password}" not in out.stdout, out.stdout
    masked = cloud.netns.run(["nova-manage", "--config-file", "/etc/nova/nova.conf", "cell_v2", "list_cells"],
                             mounts=pod.mounts, env=env, timeout=120)
    for value in cloud.secret_values.values():
        assert value not in masked.stdout, "list_cells (without --verbose) shows a password"
