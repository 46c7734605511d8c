"""Git over HTTPS with an installation token: the token travels as a header in git's environment."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bot.errors import ReleasebotError
from bot.repo import EnvRepo


def test_the_token_is_a_basic_auth_header_for_https_remotes_only(tmp_path: Path) -> None:
    tokens = iter(["ghs_first", "ghs_second"])
    repo = EnvRepo("https://github.com/acme/envs.git", tmp_path / "w", token=lambda: next(tokens))
    first, second = repo.auth_env(), repo.auth_env()  # asked afresh each time: App tokens expire
    assert first["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    assert base64.b64decode(first["GIT_CONFIG_VALUE_0"].split()[-1]) == b"x-access-token:ghs_first"
    assert base64.b64decode(second["GIT_CONFIG_VALUE_0"].split()[-1]) == b"x-access-token:ghs_second"
    assert EnvRepo("/srv/envs.git", tmp_path / "l", token=lambda: "ghs_x").auth_env() == {}


def test_a_failing_fetch_does_not_show_the_token(tmp_path: Path) -> None:
    # Port 9 on loopback: nothing listens, so git fails at once, and says how.
    repo = EnvRepo("https://127.0.0.1:9/acme/envs.git", tmp_path / "w", token=lambda: "ghs_secret_value")
    with pytest.raises(ReleasebotError) as err:
        repo.sync()
    assert "ghs_secret_value" not in str(err.value)
    assert base64.b64encode(b"x-access-token:ghs_secret_value").decode() not in str(err.value)
