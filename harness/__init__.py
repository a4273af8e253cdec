"""gmi-harness: build, validate and package GMIs (Genie Machine Images)."""

import subprocess
from pathlib import Path

__version__ = "0.1.0"


def shipped(folder: str) -> Path:
    """A folder the harness ships beside its code: ``checks`` (the checklist) or
    ``distros`` (the catalogue). Installed from a wheel they are inside this package
    (``harness/checks``: ``harness`` is the only top-level name the project installs);
    in a source checkout they are the repository's top-level folders, next to this one.
    Found without importing anything else of the harness."""
    here = Path(__file__).resolve().parent
    inside = here / folder
    return inside if inside.is_dir() else here.parent / folder


def git_revision(where: Path | None = None) -> str:
    """``git describe --always --dirty`` of the harness (or of ``where``), or "unknown"
    outside git."""
    where = where or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(where), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"
