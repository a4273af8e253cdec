"""The Hyper-V backend over PowerShell (Remoting with pypsrp, or local ``pwsh``).

``harness.backends.BACKENDS["hyperv"]`` points at :class:`HyperVBackend`; pypsrp is
imported only when a remote host is first contacted. See docs/hyperv.md.
"""

from __future__ import annotations

from harness.backends.hyperv.backend import HyperVBackend, HyperVVM, pick_host, services_problems
from harness.backends.hyperv.media import InstallMedia

__all__ = ["HyperVBackend", "HyperVVM", "InstallMedia", "pick_host", "services_problems"]
