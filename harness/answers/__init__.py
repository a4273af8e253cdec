"""Answer files for unattended installs from the official ISOs, rendered from the
distro's YAML and the build's credentials: Debian preseed, Ubuntu autoinstall,
Fedora/Rocky kickstart, openSUSE AutoYaST. Templates are readable files in
``templates/``; ``{{name}}`` is filled in (values escaped for the file's syntax).

Passwords appear only as SHA-512 crypt hashes; the build's SSH public key is
written for root and the admin so that the stages can log in.

For a backend: :func:`install_media` returns everything needed to run the install
(the ISO to boot, its SHA-256, the answer volume and what to type at the boot menu).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from ..distro import Distro
from ..errors import GmiError
from ..packaging import sha256_file
from .sha512crypt import sha512_crypt

if TYPE_CHECKING:
    from ..build import Build, Credentials
    from ..hyperv.media import InstallMedia as HvInstallMedia

TEMPLATES = Path(__file__).resolve().parent / "templates"
DISK = "/dev/sda"  # Hyper-V Gen2's SCSI disk and QEMU's virtio-scsi disk alike
# What each kind writes onto its volume (preseed: into the initrd or the ISO itself).
FILES = {"preseed": "preseed.cfg", "autoinstall": "user-data", "kickstart": "ks.cfg",
         "autoyast": "autoinst.xml"}
# AutoYaST names keymaps by language; the rest take the XKB layout.
AUTOYAST_KEYMAPS = {"us": "english-us", "gb": "english-uk", "de": "german", "fr": "french"}
_FIELD = re.compile(r"\{\{(\w+)\}\}")


def fill(template: str, values: dict[str, str]) -> str:
    """Replace each ``{{name}}``; a name without a value is a programming error."""
    def one(m: re.Match[str]) -> str:
        try:
            return values[m.group(1)]
        except KeyError:
            raise GmiError(f"answer template field {{{{{m.group(1)}}}}} has no value") from None

    return _FIELD.sub(one, template)


def _single_line(name: str, value: str) -> str:
    if "\n" in value or "'" in value or '"' in value:
        raise GmiError(f"{name} may not contain quotes or line breaks in an answer file: {value!r}")
    return value


def efi_fallback_script(d: Distro, root: str = "") -> str:
    """Shell that puts shim and its loader on the removable-media path (a new VM has no
    UEFI boot entries), unless the installer already did; ``root`` prefixes the paths
    (``/target`` from outside the installed system)."""
    esp = f"{root}{d.boot.esp_mount}"
    lines = [f"mkdir -p {esp}/EFI/BOOT"]
    for dst, src in d.boot.efi_fallback.items():
        # (braced: joined with && into one late-command, a failed cp must fail it)
        lines.append(f"{{ [ -e {esp}/{dst} ] || cp {esp}/{d.boot.efi_vendor_dir}/{src} {esp}/{dst}; }}")
    return "\n".join(lines)


def _common(d: Distro, creds: Credentials, salt: str | None) -> dict[str, str]:
    spec = d.install
    return {
        "description": d.description,
        "hostname": d.name.replace(".", "-"),
        "admin_user": _single_line("admin_user", creds.admin_user),
        "root_hash": sha512_crypt(creds.root_password, salt),
        "admin_hash": sha512_crypt(creds.admin_password, salt),
        "public_key": _single_line("the build's public key", creds.key.public_openssh.strip()),
        "locale": spec.locale, "keyboard": spec.keyboard, "timezone": spec.timezone,
        "esp_size_mib": str(spec.esp_size_mib), "root_fs": spec.root_fs, "disk": DISK,
    }


def render_preseed(d: Distro, creds: Credentials, *, mirror: str = "http://deb.debian.org/debian",
                   salt: str | None = None) -> dict[str, str]:
    host, _, directory = mirror.split("://", 1)[-1].partition("/")
    values = _common(d, creds, salt) | {
        "mirror_host": host, "mirror_dir": "/" + directory,
        "packages": " ".join(d.install.packages),
    }
    return {FILES["preseed"]: fill((TEMPLATES / "preseed.cfg").read_text(), values)}


def render_autoinstall(d: Distro, creds: Credentials, *, salt: str | None = None) -> dict[str, str]:
    v = _common(d, creds, salt)
    user = v["admin_user"]
    late = [
        # root's password (the admin's is in identity) and the build key for root
        f"curtin in-target --target=/target -- usermod -p '{v['root_hash']}' root",
        "mkdir -p /target/root/.ssh && chmod 700 /target/root/.ssh",
        f"echo '{v['public_key']}' > /target/root/.ssh/authorized_keys",
        "chmod 600 /target/root/.ssh/authorized_keys",
        f"curtin in-target --target=/target -- usermod -aG sudo {user}",
        efi_fallback_script(d, "/target").replace("\n", " && "),
    ]
    values = {k: json.dumps(val) for k, val in v.items()} | {
        "esp_size": json.dumps(f"{d.install.esp_size_mib}M"),
        "packages": json.dumps(list(d.install.packages)),
        "late_commands": json.dumps(late),
    }
    user_data = fill((TEMPLATES / "autoinstall.yaml").read_text(), values)
    meta = f"instance-id: gmi-install-{secrets.token_hex(6)}\nlocal-hostname: {v['hostname']}\n"
    return {"user-data": user_data, "meta-data": meta}


def render_kickstart(d: Distro, creds: Credentials, *, salt: str | None = None) -> dict[str, str]:
    values = _common(d, creds, salt) | {
        "disk_name": DISK.rsplit("/", 1)[-1],
        "packages": "\n".join(d.install.packages),
        "answer_extra": d.install.answer_extra.rstrip("\n"),
        "efi_fallback": efi_fallback_script(d),
        "keyboard": d.install.keyboard,
        "locale": d.install.locale,
    }
    return {FILES["kickstart"]: fill((TEMPLATES / "kickstart.ks").read_text(), values)}


def render_autoyast(d: Distro, creds: Credentials, *, salt: str | None = None) -> dict[str, str]:
    v = _common(d, creds, salt)
    values = {k: escape(val) for k, val in v.items()} | {
        "language": escape(d.install.locale.split(".")[0]),
        "keymap": escape(AUTOYAST_KEYMAPS.get(d.install.keyboard, d.install.keyboard)),
        "package_entries": "\n".join(f"      <package>{escape(p)}</package>" for p in d.install.packages),
        "efi_fallback": efi_fallback_script(d),  # (inside CDATA)
    }
    return {FILES["autoyast"]: fill((TEMPLATES / "autoinst.xml").read_text(), values)}


def render(d: Distro, creds: Credentials, *, mirror: str = "http://deb.debian.org/debian",
           salt: str | None = None) -> dict[str, str]:
    """The answer files (name -> text) of ``d``'s ``install.answer`` kind."""
    kind = d.install.answer
    if kind == "preseed":
        return render_preseed(d, creds, mirror=mirror, salt=salt)
    if kind == "autoinstall":
        return render_autoinstall(d, creds, salt=salt)
    if kind == "kickstart":
        return render_kickstart(d, creds, salt=salt)
    if kind == "autoyast":
        return render_autoyast(d, creds, salt=salt)
    raise GmiError(f"{d.name} has no answer file (install.answer is empty): it installs with "
                   f"{d.install.method} only")


@dataclass(frozen=True)
class InstallMedia:
    """What a backend needs for an unattended install from the ISO.

    ``install_iso``: the ISO to boot (the official one, verified; or a remastered copy
    of it, when the distro needs that) and ``install_sha256``, its SHA-256;
    ``official_sha256``: the official ISO's verified SHA-256. ``answer_iso``: the volume
    for a second DVD drive (``cidata`` or ``OEMDRV``), or None when the answer travels
    inside ``install_iso``.
    ``boot_command``: what to type at the ISO's boot menu ("" for nothing);
    ``<enter>``, ``<wait>``, ``<up>``... are keys (``harness.hyperv.media.key_actions``).
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
    from .. import isocache
    from . import media

    d = b.distro
    if b.creds is None:
        raise GmiError("the build has no credentials yet: provision generates them first")
    if d.iso is None or not d.install.answer:
        raise GmiError(f"{d.name} has no install ISO or answer file in its YAML: "
                       "add iso: and install.answer (see docs/distros.md)")
    official, sha = isocache.resolve(d, b.settings, iso=iso, iso_sha256=iso_sha256, log=b.progress)
    files = render(d, b.creds, mirror=b.settings.mirror)
    b.record["answer_files"] = sorted(files)  # (not their text: it holds password hashes)
    answer_iso: Path | None = None
    install_iso = official
    label = d.install.answer_label
    if d.install.remaster_grub_cfg:
        install_iso = media.remaster(official, b.workdir / f"install-{official.name}",
                                     files, d.install.remaster_grub_cfg)
    else:
        answer_iso = media.write_volume(files, b.workdir / f"answers-{label.lower()}.iso", label)
    iso_label = media.volume_label(official)
    args = d.install.kernel_args.replace("{iso_label}", iso_label).replace("{answer_label}", label)
    booted_sha = sha if install_iso == official else sha256_file(install_iso)
    return InstallMedia(install_iso, booted_sha, sha, answer_iso, label, d.install.boot_command,
                        d.install.kernel, d.install.initrd, args, tuple(files))


def hyperv_media(b: Build) -> HvInstallMedia:
    """The catalogue's install media in the Hyper-V backend's terms: assign it to
    ``HyperVBackend.media`` (its hook for this). Explicit ``--hyperv-install-iso``
    settings still win. Before provisioning (``check_host``: no credentials yet) it
    fetches and verifies the official ISO only; at provisioning, the answer files are
    rendered and their volume (or the remastered ISO) made."""
    from .. import isocache
    from ..hyperv.media import InstallMedia as HvMedia
    from ..hyperv.media import media_from_settings

    s = b.settings
    if s.hyperv_install_iso:
        return media_from_settings(b)
    wait = float(s.hyperv_boot_wait)
    if b.creds is None:
        iso, sha = isocache.resolve(b.distro, s, log=b.progress)
        return HvMedia(iso=str(iso), sha256=sha, boot_command=b.distro.install.boot_command,
                       boot_wait=wait)
    m = install_media(b)
    return HvMedia(iso=str(m.install_iso), sha256=m.install_sha256,
                   answer_iso=str(m.answer_iso or ""), boot_command=m.boot_command, boot_wait=wait)
