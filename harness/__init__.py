"""gmi-harness: build, validate and package GMIs (Genie Machine Images)."""

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
