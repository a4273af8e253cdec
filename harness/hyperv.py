"""The Hyper-V backend (PowerShell Remoting with pypsrp) is tracked by issue #3.

Until it lands, choosing it fails at the start of the run with a one-line error
instead of half-building anything.
"""

from __future__ import annotations

from .errors import ConfigError


class HyperVBackend:
    name = "hyperv"

    def __init__(self) -> None:
        raise ConfigError(
            "the hyperv backend is not available in this version yet (issue #3); "
            "use --backend=qemu"
        )
