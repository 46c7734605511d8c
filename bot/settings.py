"""Every environment variable releasebot reads, declared once: its name, default, meaning and readers.

Code reads a variable through its :class:`Setting` here, never by spelling the name again, and
the README's configuration reference is generated from this list (``make docs``; a test fails
when the README is stale, and another when a module spells a ``RELEASEBOT_*`` name of its own).

Values are parsed strictly: a number that is not one, or a wait that is not positive, is a
:class:`ConfigError` naming the variable, never a traceback. An empty value counts as unset.

This module reads no environment by itself: callers hand it the mapping (``os.environ``, or the
settings ``serve`` merged from its ``--config`` file), so tests and ``serve`` read the same way.
It knows nothing of the catalog (``releasebot.yaml``), whose settings live in its JSON Schema.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from bot.errors import ConfigError

GITHUB_API = "https://api.github.com"
LOOP = ("plan", "reconcile", "history", "rollback", "unblock")  # the verbs that take --repo


@dataclass(frozen=True)
class Setting:
    name: str
    meaning: str
    read_by: tuple[str, ...]  # the commands that read it
    default: str | None = None  # the value when unset
    shown: str | None = None  # the default as the reference shows it, when it is not a plain value
    secret: bool = False  # never printed, never in a log line
    serve: bool = False  # accepted in ``serve --config FILE`` (and by ``serve`` from the environment)

    def get(self, env: Mapping[str, str]) -> str | None:
        value = env.get(self.name)
        return value if value else self.default

    def seconds(self, env: Mapping[str, str]) -> float:
        """A positive, finite number of seconds (the default when unset)."""
        value = self.get(env)
        if value is None:
            raise ConfigError(f"{self.name} is not set; expected a positive number of seconds")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise ConfigError(f"{self.name} is {value!r}; expected a positive number of seconds")
        return number

    def integer(self, env: Mapping[str, str]) -> int | None:
        value = self.get(env)
        if value is None:
            return None
        if not (value.isascii() and value.isdigit()):
            raise ConfigError(f"{self.name} is {value!r}; expected a whole number")
        return int(value)


REPO = Setting(
    "RELEASEBOT_REPO",
    "Path or clone URL of the environments repository (`--repo` wins over it).",
    ("serve", *LOOP),
    default=".",
    serve=True,
)
WORKDIR = Setting(
    "RELEASEBOT_WORKDIR",
    "Where `serve` keeps its clone of the environments repository (`--workdir` wins over it).",
    ("serve",),
    shown="a folder under `$XDG_CACHE_HOME/releasebot/`",
    serve=True,
)
WORKDIR_WAIT = Setting(
    "RELEASEBOT_WORKDIR_WAIT",
    "Seconds a command waits for another releasebot process that holds the same workdir, before it fails naming it.",
    LOOP,
    default="120",
)
RESYNC_SECONDS = Setting(
    "RELEASEBOT_RESYNC_SECONDS",
    "Seconds between `serve`'s full resyncs, which catch whatever a webhook missed (`--resync` wins over it).",
    ("serve",),
    default="300",
    serve=True,
)
GITHUB_WEBHOOK_SECRET = Setting(
    "RELEASEBOT_GITHUB_WEBHOOK_SECRET",
    "The GitHub App's webhook secret: `X-Hub-Signature-256` is checked with it. Required: `serve` does not start "
    "without it.",
    ("serve",),
    secret=True,
    serve=True,
)
MLFLOW_WEBHOOK_SECRET = Setting(
    "RELEASEBOT_MLFLOW_WEBHOOK_SECRET",
    "The MLflow webhook's secret: `X-MLflow-Signature` is checked with it. Required by `serve`; "
    "`mlflow webhook create` registers it with MLflow unless `--secret-file` is given.",
    ("serve", "mlflow webhook create"),
    secret=True,
    serve=True,
)
GITHUB_TOKEN = Setting(
    "RELEASEBOT_GITHUB_TOKEN",
    "A GitHub token for pull requests, checks and issues, instead of the App (tests, a trial).",
    ("serve", "reconcile", "rollback", "unblock"),
    secret=True,
    serve=True,
)
GITHUB_APP_ID = Setting(
    "RELEASEBOT_GITHUB_APP_ID",
    "The GitHub App's id (`releasebot app exchange` writes it); needs `RELEASEBOT_GITHUB_PRIVATE_KEY_FILE`.",
    ("serve", "reconcile", "rollback", "unblock"),
    serve=True,
)
GITHUB_PRIVATE_KEY_FILE = Setting(
    "RELEASEBOT_GITHUB_PRIVATE_KEY_FILE",
    "A file holding the App's private key (PEM). The Deployment mounts the Secret's `github-app-private-key.pem` "
    "there.",
    ("serve", "reconcile", "rollback", "unblock"),
    serve=True,
)
GITHUB_INSTALLATION_ID = Setting(
    "RELEASEBOT_GITHUB_INSTALLATION_ID",
    "The App's installation on the environments repository's owner.",
    ("serve", "reconcile", "rollback", "unblock"),
    shown="looked up from the repository",
    serve=True,
)
GITHUB_API_URL = Setting(
    "RELEASEBOT_GITHUB_API_URL",
    "GitHub's REST API (GitHub Enterprise Server: `https://HOST/api/v3`).",
    ("serve", "reconcile", "rollback", "unblock", "app exchange"),
    default=GITHUB_API,
    serve=True,
)
KUBECONFIG = Setting(
    "RELEASEBOT_KUBECONFIG",
    "The kubeconfig release walks read Argo CD and KServe status with, outside a pod (`--kubeconfig` wins over it).",
    ("serve", "plan", "reconcile"),
    shown="`$KUBECONFIG`; in a pod, its ServiceAccount",
    serve=True,
)
KUBE_CONTEXT = Setting(
    "RELEASEBOT_KUBE_CONTEXT",
    "The kubeconfig context (`--context` wins over it).",
    ("serve", "plan", "reconcile"),
    shown="the kubeconfig's current context",
    serve=True,
)
PIPELINES_TOKEN_FILE = Setting(
    "RELEASEBOT_PIPELINES_TOKEN_FILE",
    "A file holding Kubeflow Pipelines' bearer token (`--token-file` wins over it); the retrain CronJob sets it "
    "when the catalog names `pipelines.tokenSecret`.",
    ("retrain submit",),
    shown="no token is sent",
)

# Read by releasebot, but not its own: the ecosystem's names, honoured as the ecosystem means them.
TRACKING_URI = Setting(
    "MLFLOW_TRACKING_URI",
    "The MLflow tracking server (`--tracking-uri` wins over it; the loop commands fall back on the catalog's "
    "`registry.trackingUri`). MLflow's own variables (`MLFLOW_TRACKING_TOKEN`, ...) authenticate as usual.",
    ("serve", *LOOP, "drift run", "mlflow webhook create"),
    serve=True,
)
PLAIN_KUBECONFIG = Setting(
    "KUBECONFIG",
    "Read when `RELEASEBOT_KUBECONFIG` is unset.",
    ("serve", "plan", "reconcile"),
    shown="`~/.kube/config`",
    serve=True,
)
IN_POD = Setting(
    "KUBERNETES_SERVICE_HOST",
    "Set by Kubernetes in every pod: releasebot then reads the cluster with its ServiceAccount.",
    ("serve", "plan", "reconcile"),
    serve=True,
)
CACHE_HOME = Setting(
    "XDG_CACHE_HOME",
    "Where default workdirs go (`releasebot/<hash of the repository URL>` under it).",
    ("serve", *LOOP),
    shown="`~/.cache`",
)

RELEASEBOT = (
    REPO,
    WORKDIR,
    WORKDIR_WAIT,
    RESYNC_SECONDS,
    GITHUB_WEBHOOK_SECRET,
    MLFLOW_WEBHOOK_SECRET,
    GITHUB_TOKEN,
    GITHUB_APP_ID,
    GITHUB_PRIVATE_KEY_FILE,
    GITHUB_INSTALLATION_ID,
    GITHUB_API_URL,
    KUBECONFIG,
    KUBE_CONTEXT,
    PIPELINES_TOKEN_FILE,
)
OTHERS = (TRACKING_URI, PLAIN_KUBECONFIG, IN_POD, CACHE_HOME)
ALL = RELEASEBOT + OTHERS
SERVE_KEYS = tuple(s.name for s in ALL if s.serve)
