"""The OpenStack release guard (issue 17): refuse a downgrade or a skipped release before any write. Pure.

The release a component runs is read from its image references, `images.tags.<image>`: a tag that starts
with an OpenStack release number, `YYYY.N` (`quay.io/airshipit/nova:2026.2-ubuntu_noble`, `…:2026.2`,
`…:2024.1-ubuntu_jammy-20250610`, `…:2026.2-ubuntu_noble@sha256:…`). The deployed release is read the same
way from the values stored in the newest Helm release record (already read by `observe`: no extra cost), so
nothing new has to be recorded, and releases written before this guard existed are judged too.

The rule, per image of a component (an image whose tag names no release, or that was not deployed, is not
judged):
- the same release: ok;
- the next release (N -> N+1: 2026.1 -> 2026.2, 2026.2 -> 2027.1): ok;
- a SLURP release to the next SLURP release (YYYY.1 -> YYYY+1.1, skipping YYYY.2): ok;
- an older release: refused, reason `downgrade` (a schema migrated by the newer release's db-sync is
  never migrated back; the older services may not run on it);
- anything else: refused, reason `release_skip` (OpenStack tests and supports only these upgrade paths).

A refused component is planned `blocked` (its dependents too, `need_blocked`), and a run whose plan holds a
refusal fails before any write (`Run.preflight`: the CLI exits 2). The escape hatch is the component's
`allowReleaseChange: "FROM->TO"` in cluster.yaml: it lets exactly that one change through (once deployed,
FROM is no longer the deployed release, so it never applies again).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deploy_manager.models.plan import Action, ActionKind, Reason

CODE_DOWNGRADE = "downgrade"
CODE_SKIP = "release_skip"
CODE_ALLOWED = "release_change_allowed"
CODE_UPGRADE = "release_upgrade"
REFUSALS = frozenset({CODE_DOWNGRADE, CODE_SKIP})

MSG_DOWNGRADE = (
    "OpenStack release {old} -> {new} (images.tags.{image}) is a downgrade: refused, a release never goes back"
    " (the newer release's db-sync migrated the schema)"
)
MSG_SKIP = (
    "OpenStack release {old} -> {new} (images.tags.{image}) skips a release: refused, only N -> N+1 or"
    " SLURP -> next SLURP is supported (from {old}: {allowed})"
)
MSG_ALLOWED = "OpenStack release {old} -> {new} (images.tags.{image}) allowed by allowReleaseChange"
MSG_UPGRADE = "OpenStack release {old} -> {new} ({rule})"
MSG_REFUSED_RUN = "cluster {cluster}: refused before any write: {details}"

# The tag of an image reference (after the last `:` that follows the last `/`), without a `@sha256:` digest.
_RELEASE_TAG = re.compile(r"^(\d{4})\.([12])(?:$|[-_.+])")
ALLOW_PATTERN = r"^\s*\d{4}\.[12]\s*->\s*\d{4}\.[12]\s*$"


@dataclass(frozen=True, order=True)
class OpenStackRelease:
    """A release number `YYYY.N` (N = 1 or 2; the .1 releases are SLURP releases since 2023.1)."""

    year: int
    half: int

    def __str__(self) -> str:
        return f"{self.year}.{self.half}"

    @property
    def index(self) -> int:
        return self.year * 2 + self.half - 1

    @property
    def slurp(self) -> bool:
        return self.half == 1

    def plus(self, steps: int) -> OpenStackRelease:
        i = self.index + steps
        return OpenStackRelease(i // 2, i % 2 + 1)

    @classmethod
    def parse(cls, text: str) -> OpenStackRelease | None:
        """`2026.2` -> 2026.2; anything else -> None."""
        m = _RELEASE_TAG.match(text.strip())
        return cls(int(m.group(1)), int(m.group(2))) if m else None


def release_of_image(ref: str) -> OpenStackRelease | None:
    """The release an image reference's tag names (`repo/name:2026.2-ubuntu_noble@sha256:…`), else None."""
    ref = ref.split("@", 1)[0]
    name = ref.rsplit("/", 1)[-1]
    if ":" not in name:
        return None
    return OpenStackRelease.parse(name.rsplit(":", 1)[1])


def image_releases(values: Mapping[str, Any] | None) -> dict[str, OpenStackRelease]:
    """images.tags.<image> -> the release its tag names, for the images whose tag names one."""
    images = (values or {}).get("images")
    tags = images.get("tags") if isinstance(images, Mapping) else None
    if not isinstance(tags, Mapping):
        return {}
    out: dict[str, OpenStackRelease] = {}
    for image, ref in tags.items():
        if isinstance(ref, str) and (release := release_of_image(ref)) is not None:
            out[str(image)] = release
    return out


def allowed_targets(old: OpenStackRelease) -> list[OpenStackRelease]:
    """Where `old` may go: itself, the next release, and (from a SLURP release) the next SLURP release."""
    return [old, old.plus(1), *([old.plus(2)] if old.slurp else [])]


def judge(old: OpenStackRelease, new: OpenStackRelease) -> tuple[str, str]:
    """(code, rule): `same`, `next`, `slurp` (allowed) or `downgrade`, `release_skip` (refused)."""
    step = new.index - old.index
    if step == 0:
        return "same", "same release"
    if step < 0:
        return CODE_DOWNGRADE, "a downgrade"
    if step == 1:
        return "next", "N -> N+1"
    if step == 2 and old.slurp:
        return "slurp", "SLURP -> next SLURP"
    return CODE_SKIP, "a skipped release"


def parse_allow(text: str | None) -> tuple[OpenStackRelease, OpenStackRelease] | None:
    """`allowReleaseChange: "2025.1->2026.2"` -> (2025.1, 2026.2); None when unset or malformed."""
    if not text or "->" not in text:
        return None
    old, new = (OpenStackRelease.parse(part) for part in text.split("->", 1))
    return (old, new) if old is not None and new is not None else None


def release_reasons(
    desired_values: Mapping[str, Any], deployed_values: Mapping[str, Any] | None, allow: str | None = None
) -> list[Reason]:
    """What the guard says about a component's change: refusals (codes in REFUSALS) first, else one
    informational reason per distinct release change (`release_upgrade` / `release_change_allowed`), else []."""
    new = image_releases(desired_values)
    old = image_releases(deployed_values)
    allowed = parse_allow(allow)
    refused: list[Reason] = []
    info: dict[tuple[OpenStackRelease, OpenStackRelease], Reason] = {}
    for image in sorted(new.keys() & old.keys()):
        was, will = old[image], new[image]
        code, rule = judge(was, will)
        if code == "same":
            continue
        fmt = {"old": was, "new": will, "image": image}
        if code in REFUSALS and allowed == (was, will):
            info.setdefault((was, will), Reason(CODE_ALLOWED, MSG_ALLOWED.format(**fmt)))
        elif code == CODE_DOWNGRADE:
            refused.append(Reason(CODE_DOWNGRADE, MSG_DOWNGRADE.format(**fmt)))
        elif code == CODE_SKIP:
            targets = ", ".join(str(r) for r in allowed_targets(was)[1:])
            refused.append(Reason(CODE_SKIP, MSG_SKIP.format(allowed=targets, **fmt)))
        else:
            info.setdefault((was, will), Reason(CODE_UPGRADE, MSG_UPGRADE.format(old=was, new=will, rule=rule)))
    if refused:
        # One reason per distinct change: ten images of one bump say it once (the first image names it).
        seen: set[str] = set()
        out: list[Reason] = []
        for r in refused:
            key = r.code + r.message.split(" (images.tags.", 1)[0]
            if key not in seen:
                seen.add(key)
                out.append(r)
        return out
    return list(info.values())


def refused(reasons: Sequence[Reason]) -> list[Reason]:
    return [r for r in reasons if r.code in REFUSALS]


def refusal_message(cluster: str, actions: Sequence[Action]) -> str | None:
    """The one-line error of a run whose plan refuses a release change (None: nothing is refused)."""
    details = [
        f"component {a.component}: {r.message}"
        for a in actions
        if a.action is ActionKind.blocked  # a suspended component is never written: nothing to refuse
        for r in refused(a.reasons)
    ]
    if not details:
        return None
    return MSG_REFUSED_RUN.format(cluster=cluster, details="; ".join(details))
