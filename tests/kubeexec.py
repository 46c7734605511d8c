"""Run a generated container the way Kubernetes starts it from releasebot's image.

Kubernetes builds a container's command line from the image and the pod spec: ``command``
replaces the image's ``ENTRYPOINT`` (and then the image's ``CMD`` is dropped), ``args`` replace
``CMD``, and ``$(VAR)`` in either is expanded from the container's ``env`` (``$$`` escapes, an
undefined reference stays as written). This module reads ENTRYPOINT and CMD from the final stage
of the Dockerfile (exec form only: the shell form would run under ``/bin/sh -c`` and is refused
here as it is in the Dockerfile), applies those rules to a manifest's container, and runs the
resulting argv against the ``releasebot`` installed beside this interpreter, as the image's PATH
would find it.

It does not build the image or emulate the kubelet beyond that: no volumes, no user switch. The
caller supplies what the cluster would resolve (Secrets referenced by ``valueFrom``, a DNS name
standing in for a local address) as explicit overrides.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any


def image_command(dockerfile: Path) -> tuple[list[str], list[str]]:
    """(ENTRYPOINT, CMD) of the Dockerfile's final stage, both in exec form."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    final = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    found: dict[str, list[str]] = {"ENTRYPOINT": [], "CMD": []}
    for line in lines[final:]:
        word, _, rest = line.partition(" ")
        if word.upper() in found:
            value = json.loads(rest)
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise ValueError(f"{dockerfile}: {word} must be in exec form (a JSON array): {rest}")
            found[word.upper()] = value
    return found["ENTRYPOINT"], found["CMD"]


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` is a literal ``$``,
    and an undefined reference is kept as written."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _REF.sub(sub, value)


def container_env(container: dict[str, Any], resolved: dict[str, str] | None = None) -> dict[str, str]:
    """The container's environment: ``value`` entries (expanded in order, as the kubelet does) and
    ``valueFrom`` entries taken from ``resolved`` (what the Secret or field would give)."""
    env: dict[str, str] = {}
    resolved = resolved or {}
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = expand(str(item["value"]), env)
        elif name in resolved:
            env[name] = resolved[name]
        elif not ((item.get("valueFrom") or {}).get("secretKeyRef") or {}).get("optional"):
            raise KeyError(f"{name}: valueFrom with no resolved value given")
    return env


def argv(dockerfile: Path, container: dict[str, Any], env: dict[str, str]) -> list[str]:
    entrypoint, cmd = image_command(dockerfile)
    if "command" in container:
        line = [*container["command"], *container.get("args", [])]
    elif "args" in container:
        line = [*entrypoint, *container["args"]]
    else:
        line = [*entrypoint, *cmd]
    return [expand(str(part), env) for part in line]


def pod_containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers of a CronJob, Deployment or Job manifest."""
    spec = manifest["spec"]
    if manifest["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]["containers"]


def run(
    dockerfile: Path,
    container: dict[str, Any],
    cwd: Path,
    tmp: Path,
    resolved: dict[str, str] | None = None,
    overrides: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Start ``container`` as Kubernetes would and wait for it, in ``cwd`` (standing in for the
    read-only root filesystem) with ``tmp`` as the image's HOME and TMPDIR (the mounted ``/tmp``
    emptyDir). ``overrides`` replace env values the cluster would resolve differently (a service's
    DNS name); the rest is the manifest's."""
    env = container_env(container, resolved) | (overrides or {})
    line = argv(dockerfile, container, env)
    executable = Path(sys.executable).parent / line[0]
    process_env = {"PATH": f"{executable.parent}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp), "TMPDIR": str(tmp), **env}
    return subprocess.run(
        [str(executable), *line[1:]], cwd=cwd, env=process_env, capture_output=True, text=True, timeout=timeout
    )
