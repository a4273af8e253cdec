"""What the Hyper-V backend installs from: the install ISO (with its SHA-256), the
answer media and, where the distro needs one, a boot command typed at the ISO's boot
menu.

The content of the answer media per distro (autoinstall cidata, kickstart/AutoYaST
OEMDRV, preseed) is the distro catalogue's work; it hands the backend an
:class:`InstallMedia` through :attr:`HyperVBackend.media`. Until it does, the media
come from the ``hyperv_install_*`` settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError
from harness.media import isocache
from harness.media.install import install_media

if TYPE_CHECKING:
    from harness.build import Build

SHA256 = re.compile(r"^[0-9a-f]{64}$")

# Windows virtual-key codes for Msvm_Keyboard.TypeKey, by the names Packer uses.
KEYS = {
    "enter": 0x0D, "return": 0x0D, "esc": 0x1B, "tab": 0x09, "bs": 0x08, "del": 0x2E,
    "spacebar": 0x20, "up": 0x26, "down": 0x28, "left": 0x25, "right": 0x27,
    "home": 0x24, "end": 0x23, "pageup": 0x21, "pagedown": 0x22,
    **{f"f{n}": 0x6F + n for n in range(1, 13)},
}
_TOKEN = re.compile(r"<([a-z0-9]+)>", re.I)
# Msvm_Keyboard.TypeText takes at most this many ASCII characters per call (Microsoft's
# WMI reference for Msvm_Keyboard, TypeText: "asciiText ... maximum length is 512").
TYPE_TEXT_MAX = 512


@dataclass(frozen=True)
class InstallMedia:
    """Where an unattended install comes from. ``iso`` and ``answer_iso`` are local
    files (uploaded to the run's folder) or paths on the Hyper-V host. The installer
    must power the VM off when done (``powers_off``): the backend then empties the DVD
    drives and boots from the disk."""

    iso: str
    sha256: str
    answer_iso: str = ""
    boot_command: str = ""
    boot_wait: float = 5.0
    powers_off: bool = True

    def check(self) -> None:
        if not self.iso:
            raise ConfigError("--backend=hyperv needs an install ISO: --hyperv-install-iso PATH "
                              "(local or on the host) with --hyperv-install-sha256, or "
                              "--hyperv-base-vm / --hyperv-base-vhdx")
        if not SHA256.match(self.sha256.lower()):
            raise ConfigError(f"the install ISO {self.iso} needs its SHA-256 (64 hex digits): "
                              "--hyperv-install-sha256 (from the distro's SHA256SUMS)")
        key_actions(self.boot_command)  # an unknown key or non-ASCII text fails here


def media_from_settings(b: Build) -> InstallMedia:
    s = b.settings
    return InstallMedia(iso=s.hyperv_install_iso, sha256=s.hyperv_install_sha256.lower(),
                        answer_iso=s.hyperv_answer_iso, boot_command=s.hyperv_boot_command,
                        boot_wait=float(s.hyperv_boot_wait))


def key_actions(command: str) -> list[dict[str, Any]]:
    """A boot command as Msvm_Keyboard actions: ``<enter>`` and friends are keys,
    ``<waitN>`` waits N seconds (``<wait>``: 1), everything else is typed as text, in
    runs of at most :data:`TYPE_TEXT_MAX` characters (one ``TypeText`` call each).
    Text must be ASCII: that is all ``TypeText`` types."""
    actions: list[dict[str, Any]] = []
    pos = 0
    for m in _TOKEN.finditer(command):
        if m.start() > pos:
            actions += _text_actions(command, pos, m.start())
        token = m.group(1).lower()
        wait = re.fullmatch(r"wait(\d*)", token)
        if wait:
            actions.append({"Kind": "wait", "Value": int(wait.group(1) or 1) * 1000})
        elif token in KEYS:
            actions.append({"Kind": "key", "Value": KEYS[token]})
        else:
            raise ConfigError(f"boot command: unknown key <{token}>; known: "
                              f"{', '.join(sorted(KEYS))}, <waitN>")
        pos = m.end()
    if pos < len(command):
        actions += _text_actions(command, pos, len(command))
    return actions


def _text_actions(command: str, start: int, end: int) -> list[dict[str, Any]]:
    """``command[start:end]`` as TypeText actions of at most TYPE_TEXT_MAX characters."""
    text = command[start:end]
    bad = next((i for i, c in enumerate(text) if ord(c) > 127), None)
    if bad is not None:
        c = text[bad]
        raise ConfigError(f"boot command: {c!r} (U+{ord(c):04X}) at character {start + bad + 1} "
                          "is not ASCII; Msvm_Keyboard.TypeText types only ASCII: write it "
                          "with ASCII characters")
    return [{"Kind": "text", "Value": text[i:i + TYPE_TEXT_MAX]}
            for i in range(0, len(text), TYPE_TEXT_MAX)]


def hyperv_media(b: Build) -> InstallMedia:
    """The catalogue's install media in the Hyper-V backend's terms: assign it to
    ``HyperVBackend.media`` (its hook for this). Explicit ``--hyperv-install-iso``
    settings still win. Before provisioning (``check_host``: no credentials yet) it
    fetches and verifies the official ISO only; at provisioning, the answer files are
    rendered and their volume (or the remastered ISO) made."""
    s = b.settings
    if s.hyperv_install_iso:
        return media_from_settings(b)
    wait = float(s.hyperv_boot_wait)
    if b.creds is None:
        iso, sha = isocache.resolve(b.distro, s, log=b.progress, record=b.record)
        return InstallMedia(iso=str(iso), sha256=sha, boot_command=b.distro.install.boot_command,
                       boot_wait=wait)
    m = install_media(b)
    return InstallMedia(iso=str(m.install_iso), sha256=m.install_sha256,
                   answer_iso=str(m.answer_iso or ""), boot_command=m.boot_command, boot_wait=wait)
