"""Catalog values that would be dangerous in the manifests are refused where they stand: a
credential in a URL, file:// or a metadata address where the cluster fetches, an image that is
not an OCI reference, a quantity Kubernetes cannot hold. Each error names the problem, the file,
line and JSON path; nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import imageref
from tests.conftest import EXAMPLE_CATALOG, copy_catalog
from tests.test_catalog import line_of, refuse

PASSWORD = "s3cr3t-pa55"

CASES = {
    # name: (old text, new text, JSON path, words in the message)
    "password in trackingUri": (
        "trackingUri: http://mlflow",
        f"trackingUri: http://admin:{PASSWORD}@mlflow",
        "$.registry.trackingUri",
        "credential in the URL; put the token in a Secret and name it in registry.tokenSecret",
    ),
    "token in repository.url": (
        "url: https://github.com/acme",
        f"url: https://x-access-token:ghs_{PASSWORD}@github.com/acme",
        "$.repository.url",
        "credential in the URL; releasebot's git credentials come from its own Secret",
    ),
    "token as user in the pipelines endpoint": (
        "endpoint: http://ml-pipeline",
        f"endpoint: http://{PASSWORD}@ml-pipeline",
        "$.pipelines.endpoint",
        "credential in the URL; put the token in a Secret and name it in pipelines.tokenSecret",
    ),
    "password in a storageUriMap target": (
        ": s3://acme-mlflow-artifacts/",
        f": s3://key:{PASSWORD}@acme-mlflow-artifacts/",
        "$.registry.storageUriMap['mlflow-artifacts:/']",
        "credential in the URL; KServe reads storage credentials from a Secret",
    ),
    "password in a drift window": (
        "uri: s3://acme-features/fraud",
        f"uri: https://u:{PASSWORD}@acme-features/fraud",
        "$.models[0].drift.current.uri",
        "credential in the URL; put credentials in a Secret",
    ),
    "file:// storage target": (
        ": s3://acme-mlflow-artifacts/",
        ": file:///etc/passwd",
        "$.registry.storageUriMap['mlflow-artifacts:/']",
        "file:// would read the pod's own filesystem",
    ),
    "file:// tracking URI": (
        "trackingUri: http://mlflow.mlflow.svc.cluster.local:5000",
        "trackingUri: file:///var/run/secrets/kubernetes.io",
        "$.registry.trackingUri",
        "file:// would read the pod's own filesystem",
    ),
    "AWS metadata storage target": (
        ": s3://acme-mlflow-artifacts/",
        ": http://169.254.169.254/latest/meta-data/",
        "$.registry.storageUriMap['mlflow-artifacts:/']",
        "link-local or cloud metadata address",
    ),
    "metadata pipelines endpoint": (
        "endpoint: http://ml-pipeline.kubeflow.svc.cluster.local:8888",
        "endpoint: http://169.254.169.254:8888",
        "$.pipelines.endpoint",
        "link-local or cloud metadata address",
    ),
    "GCP metadata tracking URI": (
        "trackingUri: http://mlflow.mlflow.svc.cluster.local:5000",
        "trackingUri: http://metadata.google.internal.",
        "$.registry.trackingUri",
        "link-local or cloud metadata address",
    ),
    "Alibaba metadata tracking URI": (
        "trackingUri: http://mlflow.mlflow.svc.cluster.local:5000",
        "trackingUri: http://100.100.100.200",
        "$.registry.trackingUri",
        "link-local or cloud metadata address",
    ),
    "AWS IPv6 metadata, IPv4 in decimal, IPv6 link-local": (
        ": s3://acme-mlflow-artifacts/",
        ': "http://[fd00:ec2::254]/"\n    "b:/": http://2852039166/\n    "c:/": "http://[fe80::1]/"',
        "$.registry.storageUriMap['mlflow-artifacts:/']",
        "link-local or cloud metadata address",
    ),
    "shell in bot.image": (
        "image: ghcr.io/releasebot/releasebot:0.1.0",
        'image: "x; rm -rf / #"',
        "$.bot.image",
        "'x; rm -rf / #' is not an image reference",
    ),
    "upper case in a transformer image": (
        "image: ghcr.io/acme/sentiment-tokenizer:1.4.0",
        "image: ghcr.io/ACME/tokenizer:1.4",
        "$.models[1].transformer.image",
        "is not an image reference",
    ),
    "52-digit CPU": (
        'cpu: "2"',
        'cpu: "' + "9" * 52 + '"',
        "$.models[1].resources.cpu",
        "is more than Kubernetes can hold (at most 2^63-1 millicores)",
    ),
    "memory past int64": ("memory: 8Gi", "memory: 9000Ei", "$.models[1].resources.memory", "at most 2^63-1 units"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_dangerous_catalog_value_is_refused_where_it_stands(example_text: str, case: str) -> None:
    old, new, path, words = CASES[case]
    assert old in example_text
    text = example_text.replace(old, new, 1)
    message = refuse(text)
    line = line_of(text, new.splitlines()[0].strip())
    assert f"releasebot.yaml:{line}: {path}: " in message and words in message, message
    assert PASSWORD not in message  # the refusal must not print what it refuses


def test_each_metadata_form_is_refused_on_its_own_line(example_text: str) -> None:
    _, new, _, _ = CASES["AWS IPv6 metadata, IPv4 in decimal, IPv6 link-local"]
    message = refuse(example_text.replace(": s3://acme-mlflow-artifacts/", new, 1))
    for key in ("mlflow-artifacts:/", "b:/", "c:/"):
        assert f"$.registry.storageUriMap['{key}']: points at a link-local" in message


def test_what_is_not_dangerous_is_left_alone(example_text: str) -> None:
    text = example_text.replace("url: https://github.com/acme/ml-environments.git", "url: ssh://git@github.com/a/b.git")
    text = text.replace("image: ghcr.io/releasebot/releasebot:0.1.0", "image: localhost:5000/rb@sha256:" + "a" * 64)
    text = text.replace('cpu: "2"', 'cpu: "9223372036854775"')  # just fits in millicores
    refuse_nothing = text  # parses: no exception
    from bot.catalog import parse_catalog

    parse_catalog(refuse_nothing, "releasebot.yaml", EXAMPLE_CATALOG.parent)


@pytest.mark.parametrize(
    ("reference", "ok"),
    [
        ("ghcr.io/releasebot/releasebot:0.1.0", True),
        ("nginx", True),
        ("localhost:5000/a/b_c__d--e.f:v1.2-rc_3", True),
        ("[::1]:5000/x@sha256:" + "0" * 64, True),
        ("x; rm -rf / #", False),
        ("Nginx", False),
        ("nginx:", False),
        ("nginx:" + "t" * 129, False),
        ("a/b@sha256:abc", False),
        ("-nginx", False),
        ("a" * 256, False),
    ],
)
def test_image_references_follow_the_distribution_grammar(reference: str, ok: bool) -> None:
    assert (imageref.problem(reference) is None) is ok


def test_init_refuses_a_hostile_catalog_and_writes_nothing(tmp_path: Path, example_text: str, run_cli) -> None:
    text = example_text.replace("trackingUri: http://mlflow", f"trackingUri: http://admin:{PASSWORD}@mlflow")
    catalog = copy_catalog(tmp_path, text)
    result = run_cli("init", tmp_path / "envs", "--catalog", catalog)
    assert result.code == 2 and "$.registry.trackingUri: holds a credential in the URL" in result.err
    assert PASSWORD not in result.err + result.out
    assert not (tmp_path / "envs").exists()
