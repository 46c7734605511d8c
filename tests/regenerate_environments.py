"""Regenerate the example environments repo (``environments/``) from its catalog: ``make environments``.

It is exactly what ``releasebot init`` writes, minus the ``.git`` folder, which cannot live inside
this project's repository.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from bot import cli

PROJECT = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = PROJECT / "environments"


def generate(into: Path) -> None:
    catalog = EXAMPLE_DIR / "releasebot.yaml"
    if cli.main(["init", str(into), "--catalog", str(catalog)]) != 0:
        raise SystemExit("releasebot init failed")
    shutil.rmtree(into / ".git")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "environments"
        generate(fresh)
        keep = (EXAMPLE_DIR / "releasebot.yaml").read_bytes()
        shutil.rmtree(EXAMPLE_DIR)
        shutil.copytree(fresh, EXAMPLE_DIR)
        (EXAMPLE_DIR / "releasebot.yaml").write_bytes(keep)
    print(f"regenerated {EXAMPLE_DIR.relative_to(PROJECT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
