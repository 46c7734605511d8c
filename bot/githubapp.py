"""Registering releasebot's GitHub App: the manifest, the page that posts it to GitHub, the setup
page GitHub sends the person back to, and the one-time exchange of GitHub's code for the App's keys.

GitHub's manifest flow ("Registering a GitHub App from a manifest" in GitHub's docs) takes three
steps, all within one hour:

1. ``releasebot app manifest --url URL`` fills the shipped manifest (``blueprints/github-app.json``)
   with this installation's URLs; a person posts it to GitHub from :func:`registration_page`.
2. GitHub registers the App and sends the browser to ``URL/app/setup?code=...&state=...``, which
   ``serve`` answers with :func:`setup_page`: the next command, and the state to compare. The page
   never exchanges the code: the answer holds the App's private key and webhook secret, and a web
   page is no place for them.
3. ``releasebot app exchange CODE --out DIR``, on the operator's machine, trades the code for the
   App's id, key and webhook secret (:func:`exchange`) and writes them as files only their owner
   can read (:func:`write_credentials`), ready for ``kubectl create secret``.

Everything but :func:`exchange` is pure. :func:`exchange` is one unauthenticated POST that PyGithub
has no call for. Installing the App on repositories is a click on GitHub and is not done here.
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from bot import __version__, settings
from bot.errors import ConfigError, PermanentUpstreamError, TransientUpstreamError
from bot.resources import blueprints_dir

# The paths serve answers; the manifest points GitHub at them.
GITHUB_HOOK_PATH = "/webhooks/github"
MLFLOW_HOOK_PATH = "/webhooks/mlflow"
SETUP_PATH = "/app/setup"
MANIFEST_FILE = "github-app.json"
GITHUB = "https://github.com"
MAX_NAME = 34  # GitHub refuses longer App names
# A GitHub login: letters, digits and single hyphens inside, at most 39 characters.
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
# What GitHub puts in the redirect: short opaque tokens. Anything else is not from GitHub.
_CODE = re.compile(r"[A-Za-z0-9_-]{1,100}")
_NUMBER = re.compile(r"[0-9]{1,20}")
# The files `app exchange` writes, and the keys of releasebot's Secret they belong under (the
# Deployment reads its settings from the Secret and mounts the key file from it).
KEY_FILE_KEY = "github-app-private-key.pem"  # blueprints/releasebot/deployment.yaml mounts this key
FILES = {
    "app-id": settings.GITHUB_APP_ID.name,
    "private-key.pem": KEY_FILE_KEY,
    "webhook-secret": settings.GITHUB_WEBHOOK_SECRET.name,
    "mlflow-webhook-secret": settings.MLFLOW_WEBHOOK_SECRET.name,
}


def base_url(text: str, option: str = "--url", allow_http: bool = False) -> str:
    """Where releasebot is reached from outside, without a trailing slash; refused with the reason
    when it is not an absolute ``https://`` URL without query, fragment or credentials."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as exc:
        raise ConfigError(f"{option} {text!r} is not a URL: {exc}") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{option} {text!r}: expected an absolute {' or '.join(schemes)}:// URL")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise ConfigError(f"{option} {text!r}: no query or fragment, please; releasebot adds its own paths")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{option}: no credentials in the URL")
    return text.rstrip("/")


def template() -> dict[str, Any]:
    """The manifest as shipped: permissions, events, and example URLs."""
    return json.loads((blueprints_dir() / MANIFEST_FILE).read_text())


def manifest(url: str, name: str | None = None, shipped: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The shipped manifest with this installation's URLs (``url`` as :func:`base_url` returns it)."""
    out = copy.deepcopy(dict(shipped if shipped is not None else template()))
    if name is not None:
        if not name.strip() or len(name) > MAX_NAME or not name.isprintable():
            raise ConfigError(f"--name {name!r}: GitHub takes 1 to {MAX_NAME} printable characters")
        out["name"] = name
    out["hook_attributes"]["url"] = url + GITHUB_HOOK_PATH
    out["redirect_url"] = out["setup_url"] = url + SETUP_PATH
    return out


def new_state() -> str:
    return secrets.token_urlsafe(16)


def register_url(state: str, org: str | None = None, github: str = GITHUB) -> str:
    """Where the manifest is posted: the person's own account, or an organisation's."""
    if org is not None and not _LOGIN.fullmatch(org):
        raise ConfigError(f"--org {org!r} is not a GitHub organisation name")
    where = f"organizations/{org}/settings/apps/new" if org else "settings/apps/new"
    return f"{github}/{where}?state={quote(state, safe='')}"


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}</body>\n</html>\n"
    )


def registration_page(app: Mapping[str, Any], post_url: str) -> str:
    """A page with one button that posts ``app`` to GitHub; no script, so it works anywhere."""
    value = html.escape(json.dumps(app, separators=(",", ":")), quote=True)
    body = (
        f"<p>This registers the GitHub App <strong>{html.escape(str(app['name']))}</strong> on GitHub, with "
        "the permissions and events releasebot needs. GitHub asks you to confirm the name and then sends "
        f"you to <code>{html.escape(str(app['redirect_url']))}</code> with a code.</p>\n"
        f'<form action="{html.escape(post_url, quote=True)}" method="post">\n'
        f'<input type="hidden" name="manifest" value="{value}">\n'
        '<button type="submit">Register on GitHub</button>\n</form>\n'
    )
    return _page("Register releasebot's GitHub App", body)


SECURITY_HEADERS = {
    # The code in the URL must not leave in a Referer; nothing here needs a script, a style or a frame.
    "Content-Security-Policy": "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def setup_page(params: Mapping[str, str]) -> tuple[int, str]:
    """What GitHub's redirect after registering (``code``, ``state``) or installing
    (``installation_id``) is answered with: the exact next step. Values are checked and escaped;
    a value GitHub would not send is a 400 naming it."""
    code, state, installation = params.get("code"), params.get("state"), params.get("installation_id")
    if code is not None and not _CODE.fullmatch(code):
        return 400, _page("Not a code from GitHub", "<p>The <code>code</code> parameter is not one GitHub sends.</p>\n")
    if state is not None and not _CODE.fullmatch(state):
        return 400, _page(
            "Not a state from releasebot", "<p>The <code>state</code> parameter is not one releasebot makes.</p>\n"
        )
    if installation is not None and not _NUMBER.fullmatch(installation):
        return 400, _page("Not an installation", "<p>The <code>installation_id</code> parameter is not a number.</p>\n")
    if code is not None:
        command = f"releasebot app exchange {code} --out releasebot-app"
        said_state = (
            f"<p>State: <code>{html.escape(state)}</code>. It must be the state <code>releasebot app manifest</code> "
            "printed; if it is not, someone else started this registration: do not use the code.</p>\n"
            if state
            else ""
        )
        body = (
            "<p>GitHub registered the App. Next, on your own machine and within the hour (the code expires), run:</p>\n"
            f"<pre>{html.escape(command)}</pre>\n"
            "<p>It writes the App's id, private key and webhook secret, and a new MLflow webhook secret, into "
            "<code>releasebot-app/</code> (readable only by you), and prints the <code>kubectl</code> command that "
            "puts them into releasebot's Secret. Then it prints the link to install the App on your repositories.</p>\n"
            f"{said_state}"
            "<p>This page does not exchange the code itself: GitHub's answer holds the App's private key, "
            "which does not belong in a web page.</p>\n"
        )
        return 200, _page("releasebot: one more step", body)
    if installation is not None:
        body = (
            f"<p>The App is installed (installation {installation}). releasebot finds its installation from "
            "the environments repository by itself; to pin it, add "
            f"<code>{settings.GITHUB_INSTALLATION_ID.name}={installation}</code> to releasebot's Secret.</p>\n"
            "<p>Next, if not done yet: <code>releasebot mlflow webhook create --url URL</code>, with the URL "
            "this page is served from.</p>\n"
        )
        return 200, _page("releasebot is installed", body)
    body = (
        "<p>GitHub sends people here after registering or installing releasebot's App. See "
        "<code>releasebot app manifest --help</code> to start.</p>\n"
    )
    return 200, _page("releasebot setup", body)


@dataclass(frozen=True)
class AppCredentials:
    """What GitHub hands over for a registered App; the secrets are kept out of ``repr``."""

    app_id: int
    slug: str
    html_url: str
    owner: str
    pem: str = field(repr=False)
    webhook_secret: str = field(repr=False)


def exchange(code: str, api_url: str, timeout: float = 30.0) -> AppCredentials:
    """``POST /app-manifests/{code}/conversions``: the App's id, key and webhook secret. A code
    works once and for an hour; GitHub answers 404 for any other."""
    import requests  # the receiver's process never needs it

    if not _CODE.fullmatch(code):
        raise ConfigError(f"{code!r} is not a code from GitHub's redirect (the `code` parameter of its URL)")
    url = f"{api_url.rstrip('/')}/app-manifests/{quote(code, safe='')}/conversions"
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": f"releasebot/{__version__}",
    }
    try:
        answer = requests.post(url, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise TransientUpstreamError(f"GitHub at {api_url} did not answer: {type(exc).__name__}") from exc
    if answer.status_code == 404:
        raise PermanentUpstreamError(
            "GitHub does not know this code: it was exchanged already or is more than an hour old; "
            "register the App again (releasebot app manifest)"
        )
    if answer.status_code == 429 or answer.status_code >= 500:
        raise TransientUpstreamError(f"GitHub answered {answer.status_code}; try again (the code lasts an hour)")
    if answer.status_code != 201:
        raise PermanentUpstreamError(f"GitHub refused the code ({answer.status_code}): {answer.text[:300]}")
    try:
        app = answer.json()
        credentials = AppCredentials(
            app_id=int(app["id"]),
            slug=str(app["slug"]),
            html_url=str(app["html_url"]),
            owner=str((app.get("owner") or {}).get("login", "")),
            pem=str(app["pem"]),
            webhook_secret=app["webhook_secret"],
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PermanentUpstreamError(
            f"GitHub's answer is not an App with its keys ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(credentials.webhook_secret, str) or not credentials.webhook_secret:
        raise PermanentUpstreamError("GitHub's answer has no webhook secret; the manifest's webhook was not made")
    return credentials


def check_out_dir(out: Path) -> None:
    """Refuse, before the one-time code is spent, to write over credentials already there."""
    found = [name for name in FILES if (out / name).exists()]
    if found:
        raise ConfigError(f"{out} already holds {', '.join(found)}; nothing was exchanged (choose another --out)")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is not a folder; nothing was exchanged")


def write_credentials(credentials: AppCredentials, out: Path) -> dict[str, Path]:
    """The App's id, key and webhook secret, and a new MLflow webhook secret, each in a file only
    its owner can read, byte for byte what the Secret must hold (no trailing newline: an id or a
    secret with one would not match)."""
    check_out_dir(out)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    contents = {
        "app-id": str(credentials.app_id),
        "private-key.pem": credentials.pem,
        "webhook-secret": credentials.webhook_secret,
        "mlflow-webhook-secret": secrets.token_hex(32),
    }
    written = {}
    for name, text in contents.items():
        path = out / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        written[name] = path
    return written


def install_url(credentials: AppCredentials, github: str = GITHUB) -> str:
    return f"{github}/apps/{quote(credentials.slug, safe='')}/installations/new"


def kubectl_command(files: Mapping[str, Path], namespace: str, secret: str) -> str:
    """The command that makes releasebot's Secret from the files, without a value on the command line."""
    lines = [f"kubectl create secret generic {shlex.quote(secret)} --namespace {shlex.quote(namespace)}"]
    lines += [f"  --from-file={shlex.quote(f'{FILES[name]}={path}')}" for name, path in files.items()]
    return " \\\n".join(lines)
