"""`make demo` (scripts/demo.py), the README's first command, run as a newcomer runs it: the story end to end
with --once, and the long-running form: it serves with the printed token until SIGINT, then leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.helm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
DEMO = [sys.executable, str(ROOT / "scripts" / "demo.py")]
TOKEN = "demo-test-token-0123456789"


def demo_env(helm_bin: Path, kubectl_bin: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DM_", "DEMO_"))}
    env.update(DM_HELM_BIN=str(helm_bin), DM_KUBECTL_BIN=str(kubectl_bin), **extra)
    return env


def value(lines: list[str], label: str) -> str:
    """The rest of the first line starting with `label`."""
    return next(line.removeprefix(label) for line in lines if line.startswith(label))


def index(lines: list[str], pattern: str) -> int:
    return next(i for i, line in enumerate(lines) if re.search(pattern, line))


def work_dir(lines: list[str]) -> Path:
    """The demo's temporary directory: the parent of the values repo it tells us to commit to."""
    repo = re.search(r"^-C (\S+) commit", value(lines, "try: git "))
    assert repo, lines
    return Path(repo.group(1)).parent


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children of children included), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        kids = {child for child, ppid in parents.items() if ppid == parent} - found
        found |= kids
        todo.extend(kids)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


def test_demo_once_tells_the_whole_story_and_cleans_up(helm_bin: Path, kubectl_bin: Path) -> None:
    done = subprocess.run(
        [*DEMO, "--once"], env=demo_env(helm_bin, kubectl_bin), capture_output=True, text=True, timeout=240
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    lines = out.splitlines()
    # What to open and try, in this order: the status page, the token, the commands (with that token).
    url, token = value(lines, "status page: "), value(lines, "token: ")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url) and len(token) >= 24
    assert index(lines, "^status page: ") < index(lines, "^token: ") < index(lines, "^try: git -C .* push$")
    assert value(lines, "try: curl ") == f'-H "Authorization: Bearer {token}" {url}releases'
    # The first run, step by step in dependency order (a component's own step is recorded after its Jobs).
    assert index(lines, r"rabbitmq\s+install\s+succeeded") < index(lines, r"keystone\s+bootstrap:db-sync\s+succeeded")
    assert index(lines, r"keystone\s+bootstrap:fernet-setup\s+succeeded") < index(lines, r"keystone\s+install\s+succ")
    assert index(lines, r"keystone\s+install\s+succeeded") < index(lines, r"glance\s+bootstrap:db-sync\s+succeeded")
    assert index(lines, r"nova\s+install\s+succeeded") < index(lines, r"horizon\s+install\s+succeeded")
    # 26: the OpenStack tier added db-init, upgrade-check and online-data-migration steps (issue 17)
    assert "10 releases installed, 27 bootstrap Jobs run" in lines
    # Issue 14: four gate checks and two at the end, each its own Job (counted apart from the bootstrap Jobs).
    assert "6 workflow checks run as Jobs (values/_common/smoke.yaml): 6 passed" in lines
    assert index(lines, r"keystone\s+smoke:token-issue\s+succeeded") < index(lines, r"glance\s+install\s+succeeded")
    # The push: the webhook queues a run, whose plan names the value path; only keystone-api rolls. On a loaded
    # machine the service's 5 s poll can see the new commit before the hook's POST lands: then the webhook is
    # answered for the run the poll queued (run 2 either way, checked below), not with a new one.
    webhook = index(lines, r"^remote: webhook: push refs/heads/main \w{12} -> 20[02] ")
    upgrade = index(lines, r"keystone\s+upgrade\s+succeeded rev 2  \(values changed: conf.keystone.token.expiration\)")
    assert webhook < upgrade < lines.index("The plan named: keystone conf.keystone.token.expiration")
    assert "run 2 succeeded; 9 components in sync, left alone" in lines
    assert re.search(r"^Deployments rolled: keystone-api \(1 of \d+, counted with kubectl\)$", out, re.M)
    # /releases: keystone at the pushed commit, the rest still at the first one.
    pushed = re.search(r"^=== GET /releases: keystone is at (\w{12})$", out, re.M)
    assert pushed and re.search(rf"^  keystone\s+2\s+{pushed[1]}\s+{pushed[1]}$", out, re.M)
    assert re.search(rf"^  glance\s+1\s+(?!{pushed[1]})\w{{12}}\s+{pushed[1]}$", out, re.M)
    assert not work_dir(lines).exists()


def test_demo_serves_with_the_printed_token_until_sigint_then_leaves_nothing_behind(
    helm_bin: Path, kubectl_bin: Path
) -> None:
    env = demo_env(helm_bin, kubectl_bin, DEMO_TOKEN=TOKEN)
    proc = subprocess.Popen(DEMO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    assert stdout is not None

    def read() -> None:  # a thread, so the wait for a line can time out
        for line in stdout:
            lines.put(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while not any(line.startswith("Serving until Ctrl-C") for line in seen):
            assert time.monotonic() < deadline and proc.poll() is None, "\n".join(seen)
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=1))
        url = value(seen, "status page: ").rstrip("/")
        assert value(seen, "token: ") == TOKEN
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        releases = httpx.get(f"{url}/releases", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert releases.status_code == 200 and "keystone" in {r["component"] for r in releases.json()}
        started = descendants(proc.pid)
        assert len(started) >= 2, started  # the sandbox and the service, at least
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    while not lines.empty():
        seen.append(lines.get())
    assert [pid for pid in started if alive(pid)] == []
    assert not work_dir(seen).exists()
    assert seen[-1] == "Stopped the service and the sandbox; removed the temporary directory."
