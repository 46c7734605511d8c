"""Shared fixtures: the example catalog, a CLI runner, and catalogs built from the example."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot import cli
from bot.catalog import CATALOG_FILE
from tests import cli_verbs

PROJECT = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = PROJECT / "environments"
EXAMPLE_CATALOG = EXAMPLE_DIR / CATALOG_FILE
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def independent(text: str) -> str:
    """A catalog text whose environments each follow their alias on their own: for tests of one
    environment's policies, which would otherwise wait on the environment before (promotion order)."""
    out = []
    for line in text.splitlines(keepends=True):
        out.append(line)
        if line.startswith("    writeBack: "):
            out.append("    promotion: independent\n")
    return "".join(out)


def seed_remote(tmp: Path, run_cli, text: str) -> Path:
    """An environments repo as a team would host it: ``text`` written as ``tmp/catalog``'s
    releasebot.yaml (beside whatever the test put there), ``releasebot init`` into ``tmp/seed``,
    and a bare clone of it at ``tmp/envs.git``, which is returned."""
    catalog = tmp / "catalog" / CATALOG_FILE
    catalog.parent.mkdir(exist_ok=True)
    catalog.write_text(text)
    result = run_cli("init", tmp / "seed", "--catalog", catalog)
    assert result.code == 0, result.err
    remote = tmp / "envs.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(tmp / "seed"), str(remote)], check=True)
    return remote


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/*/expected")


@dataclass
class Result:
    code: int
    out: str
    err: str
    argv: tuple[str, ...] = ()

    def json(self) -> Any:
        """stdout as the one JSON document ``--output json`` prints (the verb is remembered as
        read, for ``@pytest.mark.json_output``)."""
        return cli_verbs.parse(self.argv, self.out)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run ``releasebot ARGS`` in-process; returns exit code, stdout and stderr."""

    def run(*args: str) -> Result:
        argv = tuple(str(a) for a in args)
        capsys.readouterr()
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(int(code), captured.out, captured.err, argv)

    return run


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def json_output_read(request: pytest.FixtureRequest):
    """A test marked ``json_output("plan", ...)`` must have parsed those verbs' JSON documents."""
    cli_verbs.parsed.clear()
    yield
    marker = request.node.get_closest_marker(cli_verbs.MARKER)
    if marker is None or request.node.stash.get(_CALL_FAILED, True):
        return
    missing = cli_verbs.missing_json(marker.args, cli_verbs.parsed)
    assert not missing, f"marked json_output but no --output json document of {missing} was parsed"


@pytest.fixture(autouse=True)
def no_retry_sleeps():
    """Retries still happen, as many as configured, but nothing sleeps between them."""
    import stamina

    with stamina.set_testing(True, attempts=100, cap=True):
        yield


@pytest.fixture
def example_text() -> str:
    return EXAMPLE_CATALOG.read_text()


@pytest.fixture
def env_repo(tmp_path: Path, run_cli) -> Path:
    """A fresh environments repo made by ``releasebot init`` from the example catalog."""
    target = tmp_path / "envs"
    result = run_cli("init", target, "--catalog", EXAMPLE_CATALOG)
    assert result.code == 0, result.err
    return target


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def copy_catalog(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog" / CATALOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory):
    """One real MLflow tracking server for the whole test run. It may deliver webhooks to
    receivers on 127.0.0.1 (MLflow refuses private addresses and plain http unless told), with
    one fixed key for the secrets it keeps."""
    from cryptography.fernet import Fernet

    from tests.mlflow_server import mlflow_server

    webhooks = {
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    with mlflow_server(tmp_path_factory.mktemp("mlflow"), webhooks) as url:
        yield url


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory):
    """One real Prometheus for the whole test run, scraping a scripted exporter every second
    (tests/prometheus.py). Tests script revisions in namespaces of their own."""
    from tests.prometheus import prometheus

    with prometheus(tmp_path_factory.mktemp("prometheus")) as server:
        yield server
