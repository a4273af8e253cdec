"""One exception root. Every message is one line that says what to do next.

Secrets never reach a message: :func:`mask` replaces every registered secret with
``***`` and :class:`GmiError` applies it to its own text.
"""

from __future__ import annotations

_SECRETS: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a value that must never be printed (a password, a key)."""
    if value:
        _SECRETS.add(value)


def mask(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``***``."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class GmiError(Exception):
    """Root of the harness's errors; its ``str`` is a one-line, masked message."""

    def __str__(self) -> str:
        return mask(" ".join(super().__str__().split()))


class ConfigError(GmiError):
    """A setting, a config file or the command line is wrong."""


class DistroError(GmiError):
    """A distro YAML is missing or malformed."""


class MissingToolError(GmiError):
    """A host tool is missing; the message carries the install line."""

    def __init__(self, tool: str, package: str, how: str = "") -> None:
        how = how or f"install it with 'apt-get install -y {package}' (or run 'make setup')"
        super().__init__(f"{tool} not found on this host: {how}")
        self.tool, self.package = tool, package


class DiskSpaceError(GmiError):
    """Not enough free space where the build wants to write."""


class HypervisorError(GmiError):
    """The hypervisor refused or failed an operation."""


class GuestTimeoutError(HypervisorError):
    """A bounded wait for the guest ran out; carries the serial console tail."""


class GuestHungError(GuestTimeoutError):
    """The guest's kernel stopped in boot before SSH answered: its console shows nothing
    but RCU stall reports (a vCPU that never runs again)."""


class GuestCommandError(GmiError):
    """A command in the guest failed (non-zero exit) or SSH broke during it."""


class ExportError(GmiError):
    """Export refused or failed; an existing archive is left untouched."""


class BusyError(GmiError):
    """Another run holds what this one needs (the same archive in the same --out)."""
