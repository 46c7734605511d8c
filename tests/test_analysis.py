"""Canary analysis against a real Prometheus scraping scripted KServe traffic, and its pure parts.

One namespace holds a stable revision and four canaries: a good one, one failing a fifth of its
requests with a 500, a slow one, and one that serves nothing. Every analysis runs the default
PromQL of the deployment mode (Knative queue-proxy metrics in Serverless mode, Istio's in
Standard mode) on the Prometheus of tests/prometheus.py.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot import analysis
from bot.analysis import Check, Prometheus, checks, judge, render, threshold_text, window
from bot.catalog import Canary, Query
from bot.errors import ConfigError, PermanentUpstreamError, TransientUpstreamError
from bot.plan.types import AnalysisRequest, Key
from tests.mlflow_server import free_port
from tests.prometheus import Traffic, p95_ms

NS = "shop"
MODEL = "ranker"
STABLE = "ranker-predictor-00001"
GOOD = "ranker-predictor-00002"
ERRORS = "ranker-predictor-00003"
SLOW = "ranker-predictor-00004"
IDLE = "ranker-predictor-00005"
WINDOW = 5  # seconds of soak the tests analyse; Prometheus must hold that much first
CANARY_RPS = 6.0


def canary(**analysis_settings) -> Canary:
    return Canary(steps=(10, 50, 100), interval=600, deadline=900, **analysis_settings)


def request(canary_revision: str, mode: str = "Serverless", stable: str | None = STABLE) -> AnalysisRequest:
    end = datetime.now(UTC)
    return AnalysisRequest(
        key=Key("prod", MODEL, "release"),
        step=0,
        namespace=NS,
        model=MODEL,
        deployment_mode=mode,
        canary_revision=canary_revision,
        stable_revision=stable,
        start=end - timedelta(seconds=WINDOW),
        end=end,
    )


@pytest.fixture(scope="module")
def prom(prometheus_server):
    exporter = prometheus_server.exporter
    exporter.serve(NS, STABLE, Traffic(rps=20, latency_ms=50))
    exporter.serve(NS, GOOD, Traffic(rps=CANARY_RPS, latency_ms=55))
    exporter.serve(NS, ERRORS, Traffic(rps=CANARY_RPS, error_ratio=0.2, latency_ms=55))
    exporter.serve(NS, SLOW, Traffic(rps=CANARY_RPS, latency_ms=230))
    for metric in ("revision_request_count", "istio_requests_total"):
        prometheus_server.wait_for_window(f'{metric}{{response_code="200"}}', WINDOW)
    return prometheus_server


def by_name(verdict) -> dict:
    return {m.name: m for m in verdict.measurements}


STRICT = {"max_latency_p95_ms": 100, "max_latency_ratio": 1.5, "min_requests": 10}


# --- against the real Prometheus ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["Serverless", "Knative", "RawDeployment", "Standard"])
def test_a_good_canary_passes_every_default_check(prom, mode: str) -> None:
    verdict = analysis.analyse(prom.url, canary(**STRICT), request(GOOD, mode))
    assert verdict.passed, verdict
    m = by_name(verdict)
    assert list(m) == ["requests", "error-ratio", "latency-p95", "latency-p95-ratio"]
    assert m["requests"].canary == pytest.approx(CANARY_RPS * WINDOW, rel=0.2)
    assert m["requests"].stable == pytest.approx(20 * WINDOW, rel=0.2)
    assert m["requests"].threshold == "≥ 10"
    assert m["error-ratio"].canary == 0 and m["error-ratio"].stable == 0
    assert m["error-ratio"].threshold == "≤ 0.01"
    assert m["latency-p95"].canary == pytest.approx(p95_ms(55)) == pytest.approx(59.0)
    assert m["latency-p95"].threshold == "≤ 100 ms"
    assert m["latency-p95-ratio"].canary == pytest.approx(59.0)
    assert m["latency-p95-ratio"].stable == pytest.approx(59.0)
    assert m["latency-p95-ratio"].threshold == "≤ 1.5 × stable"  # noqa: RUF001
    metric = "revision_request_count" if mode in ("Serverless", "Knative") else "istio_requests_total"
    assert metric in m["requests"].query and GOOD in m["requests"].query and f"[{WINDOW}s]" in m["requests"].query


@pytest.mark.parametrize("mode", ["Serverless", "Standard"])
def test_a_canary_failing_a_fifth_of_its_requests_fails_the_error_ratio(prom, mode: str) -> None:
    verdict = analysis.analyse(prom.url, canary(**STRICT), request(ERRORS, mode))
    assert not verdict.passed
    m = by_name(verdict)
    assert m["error-ratio"].canary == pytest.approx(0.2, abs=0.01)
    assert m["error-ratio"].stable == 0
    assert not m["error-ratio"].passed
    assert m["error-ratio"].note.startswith("0.2") and "> 0.01" in m["error-ratio"].note
    assert [n for n, x in m.items() if not x.passed] == ["error-ratio"]


def test_a_slow_canary_fails_on_p95_and_against_the_stable_revision(prom) -> None:
    verdict = analysis.analyse(prom.url, canary(**STRICT), request(SLOW))
    m = by_name(verdict)
    assert not verdict.passed
    assert m["latency-p95"].canary == pytest.approx(247.5)
    assert not m["latency-p95"].passed and "> 100" in m["latency-p95"].note
    assert not m["latency-p95-ratio"].passed
    assert "> 1.5 × 59" in m["latency-p95-ratio"].note  # noqa: RUF001
    assert m["error-ratio"].passed and m["requests"].passed


def test_latency_ratio_alone_catches_a_slow_canary(prom) -> None:
    verdict = analysis.analyse(prom.url, canary(max_latency_ratio=2), request(SLOW))
    m = by_name(verdict)
    assert "latency-p95" not in m
    assert not m["latency-p95-ratio"].passed and not verdict.passed


def test_a_canary_without_traffic_is_no_data_and_fails_by_default(prom) -> None:
    verdict = analysis.analyse(prom.url, canary(**STRICT), request(IDLE))
    assert not verdict.passed
    for m in verdict.measurements:
        assert not m.passed and m.note.startswith("no data"), m
        assert m.canary is None
    assert by_name(verdict)["requests"].stable == pytest.approx(20 * WINDOW, rel=0.2)


def test_no_data_pass_lets_a_canary_without_traffic_through(prom) -> None:
    verdict = analysis.analyse(prom.url, canary(no_data="pass", **STRICT), request(IDLE))
    assert verdict.passed
    assert all(m.passed and "noData is pass" in m.note for m in verdict.measurements)


def test_too_few_requests_makes_the_request_checks_no_data(prom) -> None:
    verdict = analysis.analyse(prom.url, canary(min_requests=1000, max_latency_p95_ms=100), request(GOOD))
    assert not verdict.passed
    m = by_name(verdict)
    assert m["requests"].threshold == "≥ 1000"
    assert "fewer than minRequests 1000" in m["requests"].note
    assert not m["latency-p95"].passed and m["latency-p95"].canary == pytest.approx(59.0)
    assert "the canary served" in m["latency-p95"].note


def test_min_requests_zero_accepts_a_canary_without_traffic_on_the_count(prom) -> None:
    verdict = analysis.analyse(prom.url, canary(min_requests=0, max_error_ratio=None), request(IDLE))
    assert verdict.passed and [m.name for m in verdict.measurements] == ["requests"]


SUCCESS = (
    'sum(rate(revision_request_count{namespace_name="{{namespace}}", revision_name="{{revision}}", '
    'configuration_name=~"{{model}}-.*", response_code_class="2xx"}[{{window}}])) '
    '/ sum(rate(revision_request_count{namespace_name="{{namespace}}", revision_name="{{revision}}"}[{{window}}]))'
)
RPS = 'sum(rate(revision_request_count{namespace_name="{{namespace}}", revision_name="{{revision}}"}[{{window}}]))'


def test_catalog_queries_are_rendered_run_and_judged(prom) -> None:
    settings = canary(
        queries=(Query("success-rate", SUCCESS, min=0.99), Query("traffic-share", RPS, max_ratio_to_stable=0.5))
    )
    good = by_name(analysis.analyse(prom.url, settings, request(GOOD)))
    assert good["success-rate"].canary == pytest.approx(1.0)
    assert good["success-rate"].passed and good["success-rate"].threshold == "≥ 0.99"
    assert f'revision_name="{GOOD}"' in good["success-rate"].query
    assert 'configuration_name=~"ranker-.*"' in good["success-rate"].query
    assert f"[{WINDOW}s]" in good["success-rate"].query and "{{" not in good["success-rate"].query
    assert good["traffic-share"].canary == pytest.approx(CANARY_RPS, rel=0.2)
    assert good["traffic-share"].stable == pytest.approx(20, rel=0.2)
    assert good["traffic-share"].passed and good["traffic-share"].threshold == "≤ 0.5 × stable"  # noqa: RUF001

    bad = by_name(analysis.analyse(prom.url, settings, request(ERRORS)))
    assert bad["success-rate"].canary == pytest.approx(0.8, abs=0.01)
    assert not bad["success-rate"].passed and "< 0.99" in bad["success-rate"].note


def test_a_ratio_without_a_stable_revision_is_no_data(prom) -> None:
    verdict = analysis.analyse(prom.url, canary(max_latency_ratio=1.5), request(GOOD, stable=None))
    m = by_name(verdict)
    assert m["requests"].stable is None
    assert not m["latency-p95-ratio"].passed
    assert m["latency-p95-ratio"].note == "no data: no stable data to compare with"
    assert not verdict.passed


def test_a_broken_catalog_query_is_a_permanent_error_naming_it(prom) -> None:
    broken = 'sum(rate(revision_request_count{revision_name="{{revision}}"}[{{window}}]) by'
    with pytest.raises(PermanentUpstreamError) as caught:
        analysis.analyse(prom.url, canary(queries=(Query("p99-broken", broken, max=1),)), request(GOOD))
    assert "'p99-broken'" in str(caught.value) and "bad_data" in str(caught.value)
    assert f'revision_name="{GOOD}"' in str(caught.value)


def test_a_query_returning_several_series_is_refused(prom) -> None:
    per_code = 'sum by (response_code) (rate(revision_request_count{revision_name="{{revision}}"}[{{window}}]))'
    with pytest.raises(PermanentUpstreamError, match="'by-code' returned 2 series"):
        analysis.analyse(prom.url, canary(queries=(Query("by-code", per_code, max=1),)), request(ERRORS))


def test_every_default_query_is_accepted_by_prometheus(prom) -> None:
    for c in checks(canary(**STRICT), "Serverless") + checks(canary(**STRICT), "Standard"):
        q = render(c.query, namespace=NS, model=MODEL, revision=GOOD, window="600s")
        assert prom.query(q), q  # raises on a 400; an answer with a value proves the names exist


def test_an_unreachable_prometheus_is_transient() -> None:
    with pytest.raises(TransientUpstreamError, match="unreachable"):
        analysis.analyse(f"http://127.0.0.1:{free_port()}", canary(), request(GOOD))


class _Answer(BaseHTTPRequestHandler):
    status = 503
    body = b'{"status":"error","errorType":"unavailable","error":"tsdb not ready"}'

    def do_POST(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "7")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answering():
    servers = []

    def start(status: int, body: bytes) -> str:
        handler = type("Handler", (_Answer,), {"status": status, "body": body})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_prometheus_answering_503_is_transient_with_its_retry_after(answering) -> None:
    url = answering(503, _Answer.body)
    with pytest.raises(TransientUpstreamError, match="503") as caught:
        analysis.analyse(url, canary(), request(GOOD))
    assert caught.value.delay == 7


def test_something_that_is_not_prometheus_is_a_permanent_error(answering) -> None:
    url = answering(404, b"<html>not found</html>")
    with pytest.raises(PermanentUpstreamError, match=r"404.*not a Prometheus API answer"):
        analysis.analyse(url, canary(), request(GOOD))


# --- promtool ---------------------------------------------------------------------------------


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is not on PATH: `make test` installs Debian's prometheus package, which ships it"
    return found


def _check_rules(tmp_path: Path, queries: list[str]) -> subprocess.CompletedProcess[str]:
    rules = "groups:\n  - name: releasebot\n    rules:\n" + "".join(
        f"      - record: releasebot:check_{i}\n        expr: '{q.replace(chr(39), chr(39) * 2)}'\n"
        for i, q in enumerate(queries)
    )
    path = tmp_path / "rules.yml"
    path.write_text(rules)
    return subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def test_promtool_parses_every_default_query(tmp_path: Path) -> None:
    queries = [
        render(c.query, namespace=NS, model=MODEL, revision=GOOD, window="600s")
        for mode in ("Serverless", "Standard")
        for c in checks(canary(**STRICT), mode)
    ]
    done = _check_rules(tmp_path, queries)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(queries)} rules found" in done.stdout


def test_promtool_check_refuses_broken_promql(tmp_path: Path) -> None:
    done = _check_rules(tmp_path, ["sum(rate(x[5m]) by"])
    assert done.returncode != 0


# --- pure parts -------------------------------------------------------------------------------


def test_window_is_whole_seconds_and_must_be_positive() -> None:
    t = datetime(2025, 1, 1, tzinfo=UTC)
    assert window(t, t + timedelta(minutes=10)) == "600s"
    assert window(t, t + timedelta(seconds=90, milliseconds=700)) == "90s"
    with pytest.raises(ValueError):
        window(t, t)


def test_render_fills_placeholders_and_quotes_label_values() -> None:
    q = 'x{ns="{{namespace}}", m="{{ model }}", r="{{revision}}"}[{{window}}]'
    assert render(q, namespace="a", model="b", revision='c"}or vector(1)#', window="60s") == (
        'x{ns="a", m="b", r="c\\"}or vector(1)#"}[60s]'
    )


def test_render_refuses_an_unknown_placeholder_naming_the_query() -> None:
    with pytest.raises(ConfigError, match=r"'latency' uses \{\{pod\}\}"):
        render("x{pod='{{pod}}'}", namespace="a", model="b", revision="c", window="1s", check="latency")


def test_checks_follow_the_catalog_settings() -> None:
    assert [c.name for c in checks(canary(), "Serverless")] == ["requests", "error-ratio"]
    assert [c.name for c in checks(canary(max_error_ratio=None), "Serverless")] == ["requests"]
    settings = canary(max_latency_p95_ms=250, queries=(Query("q", "x", max=1),))
    assert [c.name for c in checks(settings, "RawDeployment")] == ["requests", "error-ratio", "latency-p95", "q"]
    assert checks(settings, "Standard")[0].query == analysis.ISTIO.requests
    assert checks(settings, "Knative")[0].query == analysis.KNATIVE.requests
    with pytest.raises(ConfigError, match="ModelMesh"):
        checks(settings, "ModelMesh")


def test_threshold_texts() -> None:
    assert threshold_text(Check("a", "x", max=0.01)) == "≤ 0.01"
    assert threshold_text(Check("a", "x", min=100)) == "≥ 100"
    assert threshold_text(Check("a", "x", max=250, unit="ms")) == "≤ 250 ms"
    assert threshold_text(Check("a", "x", max=2, max_ratio_to_stable=1.2)) == "≤ 2, ≤ 1.2 × stable"  # noqa: RUF001


def test_judge_pass_fail_and_no_data() -> None:
    c = Check("c", "x", max=1.0, min=0.5)
    assert judge(c, "x", 0.7, None).passed
    assert judge(c, "x", 1.5, None).note == "1.5 > 1"
    assert judge(c, "x", 0.1, None).note == "0.1 < 0.5"
    assert not judge(c, "x", None, None).passed
    nan = judge(c, "x", math.nan, 0.7)
    assert not nan.passed and nan.canary is None and nan.note.startswith("no data")
    assert judge(c, "x", None, None, no_data="pass").passed


def test_judge_ratio_to_stable() -> None:
    c = Check("c", "x", max_ratio_to_stable=1.2)
    assert judge(c, "x", 110, 100).passed
    assert judge(c, "x", 130, 100).note == "130 > 1.2 × 100"  # noqa: RUF001
    assert not judge(c, "x", 130, None).passed
    assert judge(c, "x", 130, None, no_data="pass").passed
    both = Check("c", "x", max=100, max_ratio_to_stable=1.2)
    assert judge(both, "x", 130, None, no_data="pass").note == "130 > 100; no stable data to compare with"
    assert not judge(both, "x", 130, None, no_data="pass").passed


def test_judge_request_count() -> None:
    c = Check("requests", "x", min=10, role="requests")
    assert judge(c, "x", 12.4, None).passed
    assert not judge(c, "x", 3, None).passed
    assert judge(c, "x", None, None).note == "no data: 0 requests, fewer than minRequests 10"
    kserve = Check("error-ratio", "x", max=0.01, role="kserve")
    assert not judge(kserve, "x", 0.0, 0.0, too_few_requests="thin").passed
    assert judge(Check("q", "x", max=1), "x", 0.5, None, too_few_requests="thin").passed  # a catalog query


def test_values_come_back_as_floats_including_scalars_and_infinity() -> None:
    assert analysis._value({"resultType": "scalar", "result": [1, "2.5"]}, "c", "q") == 2.5
    assert analysis._value({"resultType": "vector", "result": [{"metric": {}, "value": [1, "+Inf"]}]}, "c", "q") == (
        math.inf
    )
    assert analysis._value({"resultType": "vector", "result": []}, "c", "q") is None
    with pytest.raises(PermanentUpstreamError, match="matrix"):
        analysis._value({"resultType": "matrix", "result": []}, "c", "q")


def test_prometheus_url_may_end_with_a_slash() -> None:
    assert Prometheus("http://p:9090/").url == "http://p:9090"
