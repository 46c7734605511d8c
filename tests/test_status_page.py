"""The status page in a real browser, against a real ``releasebot serve`` and a scripted fleet.

The fleet is real where it can be: a bare git remote made by ``releasebot init``, the session's
MLflow server, the fake Kubernetes API of :mod:`tests.kubeapi` (Argo CD's own health verdicts)
for the release walks, and ``releasebot reconcile`` and a person's merges to get there:

* dev (commit mode): both models serve v1; churn's v1 drifts there (the drift job's tag);
* staging (pull-request mode): fraud's release branch is pushed, as a pass does before GitHub is
  asked for the pull request; churn's wanted v2 failed its quality gate, whose tag says why with
  a ``<script>`` in it;
* production (branch mode, canary 10/50/100): fraud v2 soaks at 10%; churn v2 was deployed and
  Argo CD finds it Degraded, so its walk rolls back.

``releasebot serve`` runs as an operator runs it, the page fills in from its worker's passes
(signed MLflow webhooks start them), and headless Chromium, driven through Debian's chromedriver,
loads ``/`` wide and at a phone's 375 by 800 px and checks what a person sees. Screenshots go to the
test's tmp_path, never into the repository. ``releasebot status`` is checked on the same fleet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from bot import cli, yamlplain
from bot.reconcile import make_plan
from bot.registry import Registry
from bot.repo import EnvRepo
from bot.status import pull_request_link
from tests.kubeapi import application, kube_api, serverless
from tests.mlflow_server import free_port, mlflow_delivery

GH_SECRET, ML_SECRET = "gh-status-secret", "mlflow-status-secret"
REPO_URL = "https://github.com/acme/envs.git"
CATALOG = """version: 1
registry:
  trackingUri: {url}
repository:
  url: {repo_url}
cluster:
  name: test
karpenter:
  nodeRole: NodeRole
prometheus:
  # Never asked: no soak ends within the test (interval 1h).
  url: http://127.0.0.1:9
environments:
  - name: dev
    alias: candidate
    namespace: {ns}-dev
    writeBack: commit
  # Each environment follows its own alias here: the fleet is set up key by key, not promoted.
  - name: staging
    alias: staging
    namespace: {ns}-staging
    writeBack: pull-request
    promotion: independent
  - name: production
    alias: champion
    namespace: {ns}-production
    writeBack: branch
    promotion: independent
    canary:
      steps: [10, 50, 100]
      interval: 1h
      deadline: 1h
models:
  - name: fraud
    registeredModel: {fraud}
    serving:
      format: mlflow
    resources:
      cpu: 250m
      memory: 512Mi
    replicas:
      min: 1
      max: 2
  - name: churn
    registeredModel: {churn}
    serving:
      format: mlflow
    resources:
      cpu: 250m
      memory: 512Mi
    replicas:
      min: 1
      max: 2
    drift:
      schedule: "0 * * * *"
      current:
        uri: s3://features/churn/latest.parquet
      action: alert
"""
KEYS = [(e, m) for e in ("dev", "staging", "production") for m in ("fraud", "churn")]
GATE_WHY = "failed: accuracy 0.81 < 0.90 <script>document.title='owned'</script>"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def releasebot(*args: object) -> None:
    code = cli.main([str(a) for a in args])
    assert code == 0, args


class Fleet:
    def __init__(self, mlflow_url: str, tmp: Path, kube) -> None:
        from mlflow.tracking import MlflowClient

        self.url, self.tmp, self.kube = mlflow_url, tmp, kube
        self.ns = f"st-{uuid.uuid4().hex[:6]}"
        self.registered = {m: f"{m}-{uuid.uuid4().hex[:8]}" for m in ("fraud", "churn")}
        self.client = MlflowClient(mlflow_url, registry_uri=mlflow_url)
        for name in self.registered.values():
            self.client.create_registered_model(name)
        catalog = tmp / "catalog" / "releasebot.yaml"
        catalog.parent.mkdir()
        catalog.write_text(
            CATALOG.format(
                url=mlflow_url,
                repo_url=REPO_URL,
                ns=self.ns,
                fraud=self.registered["fraud"],
                churn=self.registered["churn"],
            )
        )
        releasebot("init", tmp / "seed", "--catalog", catalog)
        self.remote = tmp / "envs.git"
        subprocess.run(["git", "clone", "--quiet", "--bare", str(tmp / "seed"), str(self.remote)], check=True)
        self.loop = ["--repo", self.remote, "--tracking-uri", mlflow_url, "--kubeconfig", kube.kubeconfig]
        self.history: list[tuple[str, datetime]] = []

    def version(self, model: str) -> str:
        run_id = self.client.create_run("0").info.run_id
        self.client.set_terminated(run_id)
        mv = self.client.create_model_version(
            self.registered[model], f"s3://models/{model}/{run_id[:8]}", run_id=run_id
        )
        return str(mv.version)

    def alias(self, model: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.registered[model], alias, version)

    def reconcile(self) -> None:
        releasebot("reconcile", *self.loop, "--workdir", self.tmp / "work")

    def merge(self, branch: str) -> None:
        """A person merges the bot's branch into main."""
        clone = self.tmp / f"person-{uuid.uuid4().hex[:6]}"
        subprocess.run(["git", "clone", "--quiet", str(self.remote), str(clone)], check=True)
        identity = ["-c", "user.name=Person", "-c", "user.email=person@example.com"]
        git(clone, *identity, "merge", "--quiet", "--no-ff", "-m", f"Merge {branch}", f"origin/{branch}")
        git(clone, "push", "--quiet", "origin", "main")

    def storage_uri(self, model: str) -> str:
        path = f"production/{model}/inferenceservice.yaml"
        doc = yamlplain.load(git(self.remote, "show", f"main:{path}"), path)
        return doc["spec"]["predictor"]["model"]["storageUri"]

    def deploy(self, states: dict[str, dict]) -> None:
        """Argo CD syncs main's head into production (a minute ago) and KServe reports ``states``."""
        head = git(self.remote, "rev-parse", "main").strip()
        self.history.append((head, datetime.now(UTC) - timedelta(seconds=60)))
        for model, state in states.items():
            self.kube.put(serverless(model, f"{self.ns}-production", storage_uri=self.storage_uri(model), **state))
        self.kube.put(
            application(
                "releasebot-production", destination=f"{self.ns}-production", revision=head, history=self.history
            )
        )


@pytest.fixture(scope="module")
def fleet(mlflow_url: str, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("fleet")
    with kube_api(tmp) as kube:
        f = Fleet(mlflow_url, tmp, kube)
        v1 = {m: f.version(m) for m in ("fraud", "churn")}
        v2 = {m: f.version(m) for m in ("fraud", "churn")}
        for m in ("fraud", "churn"):
            f.alias(m, "candidate", v1[m])
            f.alias(m, "champion", v1[m])
        f.reconcile()  # dev: committed; production: a branch each (first releases go straight to 100%)
        for m in ("fraud", "churn"):
            f.merge(f"releasebot/production/{m}/release")
        f.deploy({m: {"state": "promoted", "revision": 1} for m in ("fraud", "churn")})
        for m in ("fraud", "churn"):
            f.alias(m, "champion", v2[m])
        f.reconcile()  # production: each walk's first step, 10%
        for m in ("fraud", "churn"):
            f.merge(f"releasebot/production/{m}/release")
        f.deploy(
            {
                "fraud": {"state": "canary", "revision": 2, "previous": 1, "percent": 10},
                "churn": {"state": "failed", "revision": 2, "previous": 1},
            }
        )
        # staging: fraud's release branch is pushed (GitHub is not asked here); churn's gate failed.
        f.alias("fraud", "staging", v2["fraud"])
        f.alias("churn", "staging", v2["churn"])
        f.client.set_model_version_tag(f.registered["churn"], v2["churn"], "releasebot.quality.staging", GATE_WHY)
        repo = EnvRepo(str(f.remote), tmp / "pusher")
        _, p = make_plan(repo, lambda cat: Registry(mlflow_url, cat.storage_uri_map), "staging", "fraud")
        (change,) = [c for c in p.changes if c.key.kind == "release"]
        repo.push_branch(change, None)
        # dev: the drift job found churn's v1 drifting there.
        f.client.set_model_version_tag(f.registered["churn"], v1["churn"], "releasebot.drift.dev.status", "drift")
        f.v1, f.v2 = v1, v2
        yield f


# --- releasebot status --------------------------------------------------------------------------


@pytest.mark.json_output("status")
def test_status_json_is_the_fleet_with_typed_values(fleet: Fleet, run_cli, tmp_path: Path) -> None:
    result = run_cli("status", *fleet.loop, "--workdir", tmp_path / "work", "--output", "json")
    assert result.code == 0, result.err
    doc = result.json()
    rows = {(r["environment"], r["model"]): r for r in doc["rows"]}
    assert [(r["environment"], r["model"]) for r in doc["rows"]] == KEYS
    assert rows[("dev", "fraud")]["serving_version"] == fleet.v1["fraud"]
    assert rows[("dev", "churn")]["drift"] == "drift" and "drift" in rows[("dev", "churn")]["attention"]
    assert rows[("dev", "churn")]["last_reconcile"]["message"].startswith("drift alert raised: ")
    walk = rows[("production", "fraud")]["walk"]
    assert (walk["phase"], walk["step"], walk["steps"], walk["percent"]) == ("soaking", 1, 4, 10)
    assert walk["version"] == fleet.v2["fraud"] and walk["stable_version"] == fleet.v1["fraud"]
    churn = rows[("production", "churn")]
    assert churn["walk"]["phase"] == "rolling back" and "canary_failed" in churn["attention"]
    assert "Degraded" in churn["walk"]["message"]
    (branch,) = rows[("staging", "fraud")]["open_branches"]
    assert branch["pull_request_url"] == pull_request_link(REPO_URL, "releasebot/staging/fraud/release")
    gate = rows[("staging", "churn")]["quality_gate"]
    assert gate == {"version": fleet.v2["churn"], "passed": False, "detail": GATE_WHY}
    assert all(r["last_reconcile"]["at"] == doc["generated_at"] for r in doc["rows"])
    assert rows[("production", "churn")]["last_reconcile"]["outcome"] == "planned"


def test_status_table_and_html(fleet: Fleet, run_cli, tmp_path: Path) -> None:
    table = run_cli("status", *fleet.loop, "--workdir", tmp_path / "work")
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert lines[0].startswith("ENVIRONMENT") and [tuple(line.split()[:2]) for line in lines[1:]] == KEYS
    assert "soaking · step 1 of 4 · 10%" in next(line for line in lines if line.split()[:2] == ["production", "fraud"])
    html = run_cli("status", *fleet.loop, "--workdir", tmp_path / "work", "--output", "html")
    assert html.code == 0 and html.out.startswith("<!doctype html>")
    assert "&lt;script&gt;document.title=" in html.out and "<script" not in html.out


# --- the page in a browser ------------------------------------------------------------------


@pytest.fixture
def serve(fleet: Fleet, tmp_path: Path):
    port = free_port()
    env = {
        **os.environ,
        "RELEASEBOT_GITHUB_WEBHOOK_SECRET": GH_SECRET,
        "RELEASEBOT_MLFLOW_WEBHOOK_SECRET": ML_SECRET,
        "RELEASEBOT_KUBECONFIG": str(fleet.kube.kubeconfig),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    log = (tmp_path / "serve.log").open("wb")
    args = ["--repo", fleet.remote, "--workdir", tmp_path / "served", "--tracking-uri", fleet.url]
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "releasebot"),
            "serve",
            *map(str, args),
            "--port",
            str(port),
            "--resync",
            "3600",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def eventually(check, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s")


@pytest.fixture
def browser(tmp_path: Path):
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: `make test` installs Debian's chromium and chromium-driver "
            "(`make chromium`) before it runs the tests"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    options.add_argument("--headless=new")
    options.add_argument("--window-size=1400,1000")
    # Containers give /dev/shm 64 MB, which Chromium's renderers outgrow: use /tmp instead.
    options.add_argument("--disable-dev-shm-usage")
    if os.geteuid() == 0:
        # Chromium refuses to start its sandbox as root (a CI container often runs tests as root).
        # As any other user the sandbox stays on.
        options.add_argument("--no-sandbox")
    # The driver path is given, so Selenium never runs its manager to download a driver or browser.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_shows_walks_pull_requests_failures_and_drift_in_a_browser(
    fleet: Fleet, serve: str, browser, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    def ready() -> bool:
        try:
            return requests.get(f"{serve}/readyz", timeout=2).text == "ready"
        except requests.ConnectionError:
            return False

    eventually(ready)
    before = requests.get(serve, timeout=5)
    assert before.status_code == 200 and "no reconcile yet" in before.text
    for i, name in enumerate(fleet.registered.values()):
        payload = {"entity": "model_version_alias", "action": "created", "data": {"name": name, "alias": "champion"}}
        body, headers = mlflow_delivery(ML_SECRET, payload, f"status-{i}")
        assert requests.post(f"{serve}/webhooks/mlflow", data=body, headers=headers, timeout=5).status_code == 202
    eventually(lambda: "no reconcile yet" not in requests.get(serve, timeout=5).text)

    browser.get(serve)
    assert browser.title == "releasebot status"  # the gate's <script> did not run
    rows = browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [(r.get_attribute("data-environment"), r.get_attribute("data-model")) for r in rows] == KEYS

    def row(env: str, model: str):
        return browser.find_element(By.CSS_SELECTOR, f'tr[data-environment="{env}"][data-model="{model}"]')

    def cell(env: str, model: str, label: str):
        return row(env, model).find_element(By.CSS_SELECTOR, f'td[data-label="{label}"]')

    assert cell("dev", "fraud", "Serving").text == f"v{fleet.v1['fraud']}"
    assert cell("production", "fraud", "Alias wants").text == f"champion → v{fleet.v2['fraud']}"
    # The walk under way: its step of all its changes and its percentage.
    walk = cell("production", "fraud", "Walk").text
    assert f"v{fleet.v2['fraud']} soaking · step 1 of 4 · 10%" in walk
    # The open pull request is a link.
    link = cell("staging", "fraud", "Change").find_element(By.TAG_NAME, "a")
    assert link.get_attribute("href") == pull_request_link(REPO_URL, "releasebot/staging/fraud/release")
    assert link.is_displayed() and "pull request" in link.text
    # The failed canary: a class, a colour and a label, on the row and its walk.
    churn = row("production", "churn")
    assert "canary_failed" in churn.get_attribute("class").split()
    assert churn.value_of_css_property("background-color") == "rgba(254, 243, 242, 1)"
    assert row("dev", "fraud").value_of_css_property("background-color") == "rgba(0, 0, 0, 0)"
    label = churn.find_element(By.CSS_SELECTOR, ".label.bad")
    assert label.is_displayed() and label.text == "CANARY FAILED"
    assert label.value_of_css_property("color") == "rgba(180, 35, 24, 1)"
    assert "rolling back" in cell("production", "churn", "Walk").text
    # Drift, labelled; and the failed gate, its reason shown as text.
    drift = cell("dev", "churn", "Drift").find_element(By.CSS_SELECTOR, ".label")
    assert drift.is_displayed() and drift.text == "DRIFT" and "drift" in row("dev", "churn").get_attribute("class")
    gate = cell("staging", "churn", "Quality gate").text
    assert "FAILED" in gate and "<script>document.title='owned'</script>" in gate
    browser.save_screenshot(str(tmp_path / "status-wide.png"))

    # A phone: 375 px wide. Rows become cards; nothing important is cut off or scrolled away.
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 375, "height": 800, "deviceScaleFactor": 2, "mobile": True}
    )
    browser.get(serve)
    width = browser.execute_script("return document.documentElement.clientWidth")
    assert width == 375
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width  # no sideways scroll
    assert not browser.find_element(By.TAG_NAME, "thead").is_displayed()
    for env, model in KEYS:
        card = row(env, model)
        box = card.rect
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (env, model, box)
        for td in card.find_elements(By.TAG_NAME, "td"):
            inner = td.rect
            assert inner["x"] >= 0 and inner["x"] + inner["width"] <= width, (
                env,
                model,
                td.get_attribute("data-label"),
            )
    label = row("production", "churn").find_element(By.CSS_SELECTOR, ".label.bad")
    browser.execute_script("arguments[0].scrollIntoView()", label)
    assert label.is_displayed() and label.text == "CANARY FAILED"
    link = cell("staging", "fraud", "Change").find_element(By.TAG_NAME, "a")
    assert link.rect["x"] + link.rect["width"] <= width
    walk = cell("production", "fraud", "Walk")
    assert (
        walk.find_element(By.TAG_NAME, "strong").rect["x"] + walk.find_element(By.TAG_NAME, "strong").rect["width"]
        <= width
    )
    browser.save_screenshot(str(tmp_path / "status-phone.png"))
    assert (tmp_path / "status-phone.png").stat().st_size > 0
