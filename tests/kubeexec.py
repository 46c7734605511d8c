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
import signal
import subprocess
import sys
import tempfile
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


class Ran(subprocess.CompletedProcess[str]):
    """A finished container: exit code, output, and its peak resident memory (what a memory
    limit is measured against)."""

    max_rss: int = 0  # bytes


# Peak memory counts from fork, not from exec: a child forked from this test process starts with
# its pages. So a small launcher forks the container's process, waits for it with wait4 and
# writes down its own peak. A signal is reported as the kubelet reports it, 128 + the signal.
_LAUNCHER = """
import os, sys
report, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execve(argv[0], argv, os.environ)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as f:
    f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run(
    dockerfile: Path,
    container: dict[str, Any],
    cwd: Path,
    tmp: Path,
    resolved: dict[str, str] | None = None,
    overrides: dict[str, str] | None = None,
    timeout: float = 600,
) -> Ran:
    """Start ``container`` as Kubernetes would and wait for it, in ``cwd`` (standing in for the
    read-only root filesystem) with ``tmp`` as the image's HOME and TMPDIR (the mounted ``/tmp``
    emptyDir). ``overrides`` replace env values the cluster would resolve differently (a service's
    DNS name, where a volume is mounted); the rest is the manifest's. A container still running
    after ``timeout`` seconds is killed, as ``activeDeadlineSeconds`` would; its peak memory is
    measured from a launcher of about 10 MiB, so it is exact to that much."""
    env = container_env(container, resolved) | (overrides or {})
    line = argv(dockerfile, container, env)
    executable = Path(sys.executable).parent / line[0]
    process_env = {"PATH": f"{executable.parent}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp), "TMPDIR": str(tmp), **env}
    command = [str(executable), *line[1:]]
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "maxrss"
        process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(report), *command],
            cwd=cwd,
            env=process_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
        ran = Ran(command, process.returncode, out, err)
        if report.exists():
            ran.max_rss = int(report.read_text()) * 1024  # Linux reports KiB
    return ran
