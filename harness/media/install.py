"""One install medium for any backend: the official ISO (downloaded once, verified) and
the answer files on their volume, or the ISO remastered with them; each backend adapts
it to its own way of booting (QEMU: direct kernel boot; Hyper-V: a DVD and typed keys)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import GmiError
from harness.host.tools import sha256_file
from harness.media import isocache
from harness.media.answers import render
from harness.media.iso import remaster, volume_label, write_volume

if TYPE_CHECKING:
    from harness.build import Build


@dataclass(frozen=True)
class InstallMedia:
    """What a backend needs for an unattended install from the ISO.

    ``install_iso``: the ISO to boot (the official one, verified; or a remastered copy
    of it, when the distro needs that) and ``install_sha256``, its SHA-256;
    ``official_sha256``: the official ISO's verified SHA-256. ``answer_iso``: the volume
    for a second DVD drive (``cidata`` or ``OEMDRV``), or None when the answer travels
    inside ``install_iso``.
    ``boot_command``: what to type at the ISO's boot menu ("" for nothing);
    ``<enter>``, ``<wait>``, ``<up>``... are keys (``harness.backends.hyperv.media.key_actions``).
    ``kernel``/``initrd``/``kernel_args``: the same install by direct kernel boot (paths
    on the ISO), for backends that can.
    """

    install_iso: Path
    install_sha256: str
    official_sha256: str
    answer_iso: Path | None
    answer_label: str
    boot_command: str
    kernel: str
    initrd: str
    kernel_args: str
    files: tuple[str, ...]


def install_media(b: Build, iso: Path | None = None, iso_sha256: str = "") -> InstallMedia:
    """Render the answer files for build ``b`` (its credentials must exist), put them on
    their volume (or remaster the ISO) in ``b.workdir``, and fetch and verify the
    install ISO (``iso`` instead of the official download, when given)."""
    d = b.distro
    if b.creds is None:
        raise GmiError("the build has no credentials yet: provision generates them first")
    if d.iso is None or not d.install.answer:
        raise GmiError(f"{d.name} has no install ISO or answer file in its YAML: "
                       "add iso: and install.answer (see docs/distros.md)")
    official, sha = isocache.resolve(d, b.settings, iso=iso, iso_sha256=iso_sha256, log=b.progress,
                                     record=b.record)
    files = render(d, b.creds, mirror=b.settings.mirror)
    b.record["answer_files"] = sorted(files)  # (not their text: it holds password hashes)
    answer_iso: Path | None = None
    install_iso = official
    label = d.install.answer_label
    if d.install.remaster_grub_cfg:
        install_iso = remaster(official, b.workdir / f"install-{official.name}",
                                files, d.install.remaster_grub_cfg)
    else:
        answer_iso = write_volume(files, b.workdir / f"answers-{label.lower()}.iso", label)
    iso_label = volume_label(official)
    args = d.install.kernel_args.replace("{iso_label}", iso_label).replace("{answer_label}", label)
    booted_sha = sha if install_iso == official else sha256_file(install_iso)
    return InstallMedia(install_iso, booted_sha, sha, answer_iso, label, d.install.boot_command,
                        d.install.kernel, d.install.initrd, args, tuple(files))


