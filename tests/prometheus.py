"""A real Prometheus for tests, scraping a small exporter of KServe-style request metrics.

:class:`Exporter` is an HTTP server on 127.0.0.1 that serves, for each revision a test scripts,
the series canary analysis reads in both KServe modes: Knative queue-proxy metrics
(``revision_request_count``, ``revision_request_latencies_bucket``) and Istio's standard metrics
(``istio_requests_total``, ``istio_request_duration_milliseconds_bucket``), the Deployment name
standing in for the revision. Counters grow with wall time at the scripted rate, so ``rate()`` and
``increase()`` see real traffic; every request of a revision takes the same scripted latency.

:func:`prometheus` starts the ``prometheus`` binary (Debian's package; ``make test`` installs it)
on 127.0.0.1 with a temporary storage directory, scraping the exporter (and any further targets
a test names, evaluating a rule file it gives) every second, and stops both on exit. A test
scripts traffic with :meth:`Exporter.serve` and waits for enough scrapes with
:meth:`PrometheusServer.wait_for_window` (polling Prometheus, bounded), never by sleeping.

It deliberately fakes nothing about Prometheus itself, and knows nothing of releasebot.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from tests.mlflow_server import free_port

SCRAPE_SECONDS = 1
# Knative queue-proxy's latency buckets (ms); Istio's default buckets are close enough that one
# set serves both, and tests can compute the p95 Prometheus interpolates from them.
BUCKETS_MS = (5, 10, 20, 40, 60, 80, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 900, 1000, 2000, 5000)


@dataclass(frozen=True)
class Traffic:
    """What one revision serves: requests per second, the share failing with a 500, and the
    latency of every request in milliseconds."""

    rps: float
    error_ratio: float = 0.0
    latency_ms: float = 50.0


@dataclass
class _Series:
    """A counter that grows at ``rate`` per second from ``base`` at ``since`` (monotonic clock)."""

    rate: float
    base: float = 0.0
    since: float = field(default_factory=time.monotonic)

    def value(self, now: float) -> float:
        return self.base + self.rate * (now - self.since)

    def retune(self, rate: float, now: float) -> None:
        self.base, self.since, self.rate = self.value(now), now, rate


class Exporter:
    """Scripted KServe/Knative/Istio request metrics on ``/metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traffic: dict[tuple[str, str], Traffic] = {}
        self._ok: dict[tuple[str, str], _Series] = {}
        self._failed: dict[tuple[str, str], _Series] = {}
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # scrapes every second would flood the output
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def serve(self, namespace: str, revision: str, traffic: Traffic) -> None:
        """Script (or re-script) a revision's traffic from now on; its counters never go back."""
        now = time.monotonic()
        key = (namespace, revision)
        ok, failed = traffic.rps * (1 - traffic.error_ratio), traffic.rps * traffic.error_ratio
        with self._lock:
            self._traffic[key] = traffic
            if key in self._ok:
                self._ok[key].retune(ok, now)
                self._failed[key].retune(failed, now)
            else:
                self._ok[key], self._failed[key] = _Series(ok, since=now), _Series(failed, since=now)

    def render(self) -> str:
        now = time.monotonic()
        lines = [
            "# TYPE revision_request_count counter",
            "# TYPE revision_request_latencies histogram",
            "# TYPE istio_requests_total counter",
            "# TYPE istio_request_duration_milliseconds histogram",
        ]
        with self._lock:
            for (ns, rev), traffic in sorted(self._traffic.items()):
                ok, failed = self._ok[ns, rev].value(now), self._failed[ns, rev].value(now)
                kn = (
                    f'namespace_name="{ns}",revision_name="{rev}",configuration_name="{rev}",'
                    'container_name="queue-proxy"'
                )
                ist = (
                    f'reporter="destination",destination_workload_namespace="{ns}",destination_workload="{rev}",'
                    f'destination_service_namespace="{ns}"'
                )
                # As in the queue-proxy and Envoy, a series appears once a request with that code was seen.
                for code, count in (("200", ok), ("500", failed)):
                    if traffic.rps * (traffic.error_ratio if code == "500" else 1 - traffic.error_ratio) == 0:
                        continue
                    cls = code[0] + "xx"
                    k = f'{kn},response_code="{code}",response_code_class="{cls}"'
                    i = f'{ist},response_code="{code}"'
                    lines.append(f"revision_request_count{{{k}}} {count!r}")
                    lines.append(f"istio_requests_total{{{i}}} {count!r}")
                    for le in (*BUCKETS_MS, "+Inf"):
                        inside = count if le == "+Inf" or traffic.latency_ms <= float(le) else 0.0
                        lines.append(f'revision_request_latencies_bucket{{{k},le="{le}"}} {inside!r}')
                        lines.append(f'istio_request_duration_milliseconds_bucket{{{i},le="{le}"}} {inside!r}')
                    lines.append(f"revision_request_latencies_count{{{k}}} {count!r}")
                    lines.append(f"revision_request_latencies_sum{{{k}}} {count * traffic.latency_ms!r}")
                    lines.append(f"istio_request_duration_milliseconds_count{{{i}}} {count!r}")
                    lines.append(f"istio_request_duration_milliseconds_sum{{{i}}} {count * traffic.latency_ms!r}")
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def p95_ms(latency_ms: float) -> float:
    """The p95 Prometheus's histogram_quantile reports when every request took ``latency_ms``:
    it interpolates linearly inside the bucket that holds them."""
    upper = next(b for b in BUCKETS_MS if latency_ms <= b)
    lower = max((b for b in BUCKETS_MS if b < upper), default=0)
    return lower + (upper - lower) * 0.95


@dataclass
class PrometheusServer:
    url: str
    exporter: Exporter
    log: Path

    def query(self, promql: str) -> list[dict]:
        r = requests.post(f"{self.url}/api/v1/query", data={"query": promql}, timeout=10)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def wait_for_window(self, selector: str, seconds: int, timeout: float = 60.0) -> None:
        """Wait until Prometheus holds scrapes of ``selector`` covering the last ``seconds``: then a
        ``rate()`` over that window sees the scripted traffic in full, not a sliver of it."""
        need = seconds // SCRAPE_SECONDS + 1
        deadline = time.monotonic() + timeout
        probe = f"min(count_over_time({selector}[{seconds + 1}s]))"
        while True:
            result = self.query(probe)
            if result and float(result[0]["value"][1]) >= need:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Prometheus did not scrape {selector} for {seconds}s within {timeout:g}s; "
                    f"last answer {result}; log: {self.log.read_text()[-2000:]}"
                )
            time.sleep(0.2)


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if not found:
        raise AssertionError(
            "the prometheus binary is not on PATH: `make test` installs Debian's prometheus package "
            "(apt-get install --no-install-recommends prometheus)"
        )
    return found


@contextmanager
def prometheus(
    root: Path, scrape: Sequence[tuple[str, str, Mapping[str, str]]] = (), rules: Path | None = None
) -> Iterator[PrometheusServer]:
    """A Prometheus on 127.0.0.1 scraping a fresh :class:`Exporter` every second, and the
    ``scrape`` targets given as (job, address, target labels); with ``rules``, a rule file it
    evaluates every second."""
    binary = prometheus_binary()
    exporter = Exporter()
    try:
        port = free_port()
        config = root / "prometheus.yml"
        text = (
            f"global:\n  scrape_interval: {SCRAPE_SECONDS}s\n  scrape_timeout: {SCRAPE_SECONDS}s\n"
            f"  evaluation_interval: {SCRAPE_SECONDS}s\n"
            "scrape_configs:\n"
            "  - job_name: kserve\n"
            f"    static_configs:\n      - targets: ['{exporter.address}']\n"
        )
        for job, address, labels in scrape:
            text += f"  - job_name: {json.dumps(job)}\n    static_configs:\n      - targets: [{json.dumps(address)}]\n"
            text += f"        labels: {json.dumps(dict(labels))}\n"
        if rules is not None:
            text += f"rule_files: [{json.dumps(str(rules))}]\n"
        config.write_text(text)
        log_path = root / "prometheus.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, proc, log_path)
            yield PrometheusServer(url, exporter, log_path)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        exporter.close()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"prometheus did not become ready within 60s: {log.read_text()[-3000:]}")
        time.sleep(0.1)
