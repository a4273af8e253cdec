"""Text for people: masking log records, readable serial consoles."""

from __future__ import annotations

import logging
import re

from harness.errors import mask

_ANSI = re.compile(r"\x1b\[[0-9;?=]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


def clean_console(raw: bytes) -> str:
    """Serial console bytes as readable text: no terminal escapes, no carriage returns."""
    return _ANSI.sub("", raw.decode("utf-8", "replace"))


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))
