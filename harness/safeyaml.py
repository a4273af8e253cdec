"""YAML as data only: every YAML the harness reads (the distro catalogue, an archive's
manifest and build record, a repository index) goes through :func:`load`.

On top of PyYAML's ``SafeLoader`` (no ``!!python/object`` or any other constructor of
objects), it refuses what a hostile file uses to blow up or to hide:

- anchors and aliases (``&a``, ``*a``, ``<<: *a``): a "billion laughs" bomb is a few
  lines of aliases that expand into gigabytes once walked or dumped;
- explicit tags (``!!python/object/apply:os.system``, ``!custom``): data never needs them;
- nesting deeper than :data:`MAX_DEPTH` (PyYAML composes recursively).

Each refusal is a ``yaml.YAMLError`` with the line, so the callers' existing handlers
turn it into their one-line error.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError

MAX_DEPTH = 64


class Loader(yaml.SafeLoader):
    """``SafeLoader`` without anchors, aliases, explicit tags or deep nesting."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def _refuse(self, what: str, event: Any) -> ComposerError:
        return ComposerError(None, None, f"{what} refused (this file must be plain data)",
                             event.start_mark)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise self._refuse(f"alias *{event.anchor}: anchors and aliases are", event)
        if getattr(event, "anchor", None) is not None:
            raise self._refuse(f"anchor &{event.anchor}: anchors and aliases are", event)
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!":
            raise self._refuse(f"tag {tag}: explicit tags are", event)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise self._refuse(f"nesting deeper than {MAX_DEPTH} levels is", event)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load(text: str, loader: type[Loader] = Loader) -> Any:
    """The data in ``text``; raises ``yaml.YAMLError`` (with a line) on anything else."""
    return yaml.load(text, Loader=loader)  # a SafeLoader subclass
