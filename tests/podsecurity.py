"""The Kubernetes `restricted` Pod Security profile, as far as a pod spec shows it (shared by the chart and Job tests).

https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted — the checks a spec can fail:
privileged, privilege escalation, capabilities beyond NET_BIND_SERVICE, running as root, seccomp profile, host
namespaces and hostPath volumes. Plus ours: every container carries resource requests.
"""

from __future__ import annotations

from typing import Any


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    psc = pod.get("securityContext") or {}
    out = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(key)
    if any("hostPath" in v for v in pod.get("volumes") or []):
        out.append("hostPath")
    for c in [*pod.get("initContainers", []), *pod["containers"]]:
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            out.append("privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append("allowPrivilegeEscalation")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []) or set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append("capabilities")
        if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")) or 0 in (sc.get("runAsUser"), psc.get("runAsUser")):
            out.append("runAsNonRoot")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append("seccompProfile")
        if not (c.get("resources") or {}).get("requests"):
            out.append("resources")
    return out
