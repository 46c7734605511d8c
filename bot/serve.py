"""``releasebot serve`` put together: configuration, the receiver, and where the work runs.

* :func:`load_config`: the ``RELEASEBOT_*`` settings from the environment, over an optional file
  with the same keys (flags over both). No webhook secret has a default: without both the
  service refuses to start.
* :func:`build_receiver`: the receiver, with the worker (:class:`bot.service.Service`) in a
  process of its own (:mod:`bot.workerprocess`), or, for tests whose HTTP mocks must see the
  worker's calls, on threads of this process.

This module runs in the receiver's process, so it imports nothing of the worker's (MLflow, git,
GitHub) unless asked for the worker in this process.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bot import settings, yamlio
from bot.errors import ConfigError, InvalidInput, Problem
from bot.metrics import Metrics
from bot.server import Receiver, Settings
from bot.work import LocalWork, Work
from bot.workerprocess import WorkerProcess, service_factory

# Every setting serve takes, from the environment or --config (bot.settings declares them).
KEYS = settings.SERVE_KEYS
THREADS = 4  # independent keys at once; repository writes are still one at a time


def load_config(env: Mapping[str, str], file: Path | None = None) -> dict[str, str]:
    """Settings from ``file`` (a YAML mapping of the same keys), overridden by the environment."""
    config: dict[str, str] = {}
    if file is not None:
        name = str(file)
        doc = yamlio.load(yamlio.read_text(file, name), name)
        raw = yamlio.to_plain(doc)
        if not isinstance(raw, dict):
            raise InvalidInput([Problem(name, 1, "$", "expected a mapping of RELEASEBOT_* settings", "config")])
        problems = []
        for key, value in raw.items():
            where = yamlio.line_of(doc, (key,))
            if key not in KEYS:
                message = f"unknown setting; expected one of {', '.join(KEYS)}"
                problems.append(Problem(name, where, f"$.{key}", message, "config"))
            elif not isinstance(value, str | int) or isinstance(value, bool):
                problems.append(Problem(name, where, f"$.{key}", "expected a string", "config"))
            else:
                config[key] = str(value)
        if problems:
            raise InvalidInput(problems)
    config.update({k: v for k, v in env.items() if k in KEYS and v})
    return config


def build_receiver(
    config: Mapping[str, str], metrics: Metrics | None = None, in_process: bool = False
) -> tuple[Receiver, Work]:
    """The receiver and where its work runs, from settings; refuses to build without both webhook
    secrets. The worker process is started with the receiver (``Receiver.start``); in this
    process (``in_process``) the worker is built, and the repo cloned, here and now."""
    github_secret = settings.GITHUB_WEBHOOK_SECRET.get(config)
    mlflow_secret = settings.MLFLOW_WEBHOOK_SECRET.get(config)
    if not github_secret or not mlflow_secret:
        # No default secret: an unauthenticated receiver would let anyone trigger work.
        names = f"{settings.GITHUB_WEBHOOK_SECRET.name} and {settings.MLFLOW_WEBHOOK_SECRET.name}"
        raise ConfigError(f"set {names}; not starting")
    resync = settings.RESYNC_SECONDS.seconds(config)
    metrics = metrics or Metrics()
    work: Work
    if in_process:
        from bot.service import Service

        service = Service(config, metrics)
        work = LocalWork(service, service.catalog, metrics, THREADS)
    else:
        work = WorkerProcess(service_factory(config), metrics, THREADS)
    return Receiver(Settings(github_secret, mlflow_secret, resync), work), work
