"""The command line: messages, and nothing written when input is refused (exit 2)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import git
import pytest

from tests.conftest import EXAMPLE_CATALOG, PROJECT, copy_catalog, tree
from tests.test_yamlio import HOSTILE


def test_init_creates_a_git_repository_with_one_commit(env_repo: Path) -> None:
    repo = git.Repo(env_repo)
    assert repo.active_branch.name == "main"
    assert len(list(repo.iter_commits())) == 1
    assert not repo.is_dirty(untracked_files=True)
    assert (env_repo / "releasebot.yaml").read_bytes() == EXAMPLE_CATALOG.read_bytes()
    assert oct((env_repo).stat().st_mode & 0o777) == "0o755"


def test_init_refuses_a_non_empty_directory(tmp_path: Path, run_cli) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    result = run_cli("init", target, "--catalog", EXAMPLE_CATALOG)
    assert result.code == 2
    assert "already exists and is not empty; nothing was written" in result.err
    assert tree(target) == {"keep.txt": b"mine"}


def test_init_with_a_bad_catalog_writes_nothing(tmp_path: Path, run_cli, example_text: str) -> None:
    catalog = copy_catalog(tmp_path, example_text.replace("cpu: 500m", "cpu: 0.5"))
    result = run_cli("init", tmp_path / "out", "--catalog", catalog)
    assert result.code == 2
    assert "$.models[0].resources.cpu: 0.5 is invalid" in result.err
    assert "nothing was written" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog"]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_init_with_a_hostile_catalog_writes_nothing(tmp_path: Path, run_cli, case: str) -> None:
    text, expected, _ = HOSTILE[case]
    catalog = copy_catalog(tmp_path, text)
    result = run_cli("init", tmp_path / "out", "--catalog", catalog)
    assert result.code == 2
    assert expected in result.err and "releasebot.yaml" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog"]


def test_init_copies_and_uses_the_catalogs_own_blueprints(tmp_path: Path, run_cli, example_text: str) -> None:
    catalog = copy_catalog(tmp_path, example_text.replace("version: 1\n", "version: 1\nblueprints: ./my-blueprints\n"))
    own = catalog.parent / "my-blueprints" / "karpenter"
    own.mkdir(parents=True)
    builtin = (PROJECT / "blueprints/karpenter/ec2nodeclass.yaml").read_text()
    (own / "ec2nodeclass.yaml").write_text(builtin.replace("httpPutResponseHopLimit: 1", "httpPutResponseHopLimit: 2"))
    result = run_cli("init", tmp_path / "out", "--catalog", catalog)
    assert result.code == 0, result.err
    assert (tmp_path / "out/my-blueprints/karpenter/ec2nodeclass.yaml").is_file()
    assert "httpPutResponseHopLimit: 2" in (tmp_path / "out/dev/karpenter/ec2nodeclass.yaml").read_text()
    assert run_cli("render", "--check", tmp_path / "out").code == 0
    assert run_cli("validate", tmp_path / "out").code == 0


def test_blueprints_outside_the_catalog_folder_are_refused(tmp_path: Path, run_cli, example_text: str) -> None:
    (tmp_path / "elsewhere").mkdir()
    catalog = copy_catalog(tmp_path, example_text.replace("version: 1\n", "version: 1\nblueprints: ../elsewhere\n"))
    result = run_cli("init", tmp_path / "out", "--catalog", catalog)
    assert result.code == 2
    assert "$.blueprints: blueprint folder '../elsewhere' must be inside the catalog's folder" in result.err
    assert not (tmp_path / "out").exists()


def test_render_check_lists_differences_and_exits_1(env_repo: Path, run_cli) -> None:
    catalog = env_repo / "releasebot.yaml"
    catalog.write_text(catalog.read_text().replace("nodeRole: KarpenterNodeRole-ml-prod", "nodeRole: NewRole"))
    before = tree(env_repo)
    result = run_cli("render", "--check", "--diff", env_repo)
    assert result.code == 1
    assert "update dev/karpenter/ec2nodeclass.yaml: $.spec.role" in result.out
    assert "-  role: KarpenterNodeRole-ml-prod\n+  role: NewRole\n" in result.out
    assert tree(env_repo) == before  # --check writes nothing
    assert run_cli("render", env_repo).code == 0
    assert run_cli("render", "--check", env_repo).code == 0


def test_render_with_a_broken_manifest_names_it_and_writes_nothing(env_repo: Path, run_cli) -> None:
    (env_repo / "dev/fraud-detector/inferenceservice.yaml").write_text("spec: {a: 1\n")
    catalog = env_repo / "releasebot.yaml"
    catalog.write_text(catalog.read_text().replace("nodeRole: KarpenterNodeRole-ml-prod", "nodeRole: NewRole"))
    before = tree(env_repo)
    result = run_cli("render", env_repo)
    assert result.code == 2
    assert "dev/fraud-detector/inferenceservice.yaml:2: invalid YAML" in result.err
    assert tree(env_repo) == before


def test_validate_exits_1_on_problems(env_repo: Path, run_cli) -> None:
    (env_repo / "releasebot.yaml").write_text("version: 2\n")
    result = run_cli("validate", env_repo)
    assert result.code == 1
    assert "releasebot.yaml:1: $.version: expected 1, got 2" in result.err


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "releasebot"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("releasebot ")


BASH_COMPLETE = """
source "$1"
words() {
  COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
  COMPREPLY=(); _shtab_releasebot; echo "${COMPREPLY[*]}"
}
complete -p releasebot
words releasebot pl
words releasebot drift r
words releasebot plan --output ''
words releasebot reconcile --out
"""


def test_bash_completion_is_valid_bash_and_completes_verbs_and_options(tmp_path: Path, run_cli) -> None:
    result = run_cli("completion", "bash")
    assert result.code == 0 and result.err == ""
    script = tmp_path / "releasebot.bash"
    script.write_text(result.out)
    subprocess.run(["bash", "-n", str(script)], check=True)
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", BASH_COMPLETE, "-", str(script)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines() == [
        "complete -o bashdefault -F _shtab_releasebot releasebot",
        "plan",
        "run",
        "table json",
        "--output",
    ]


def _commands(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """(name, help) of every subcommand, nested ones included."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                found.append((choice.dest, choice.help))
                found += _commands(action.choices[choice.dest])
    return found


@pytest.mark.parametrize(
    ("shell", "offer", "check"),
    [
        ("zsh", "{name}:'{help}'", ["zsh", "-n"]),
        ("fish", "-a {name} -d '{help}'", ["fish", "--no-execute"]),
    ],
)
def test_zsh_and_fish_completion_offer_every_command(
    tmp_path: Path, run_cli, shell: str, offer: str, check: list[str]
) -> None:
    import shutil

    from bot.cli import build_parser

    result = run_cli("completion", shell)
    assert result.code == 0
    commands = _commands(build_parser())
    assert len(commands) >= 15
    for name, text in commands:
        quoted = text.replace("'", "'\"'\"'")  # a quote closes, is said, and reopens
        assert offer.format(name=name, help=quoted) in result.out, name
    if shutil.which(check[0]):  # where the shell is installed, it reads the script too
        script = tmp_path / f"releasebot.{shell}"
        script.write_text(result.out)
        subprocess.run([*check, str(script)], check=True)
        if shell == "fish":
            asked = f"source {script}; complete -C 'releasebot pl'; complete -C 'releasebot drift r'"
            done = subprocess.run(["fish", "-c", asked], capture_output=True, text=True, check=True)
            assert [line.split("\t")[0] for line in done.stdout.splitlines()] == ["plan", "run"]
