"""Answer files for unattended installs from the official ISOs, rendered from the
distro's YAML and the build's credentials: Debian preseed, Ubuntu autoinstall,
Fedora/Rocky kickstart, openSUSE AutoYaST (Leap 15.6, Tumbleweed) and Agama's JSON
profile (Leap 16). Templates are readable files in
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
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from harness.distro import Distro
from harness.errors import GmiError
from harness.media.answers.sha512crypt import sha512_crypt

if TYPE_CHECKING:
    from harness.build import Credentials

TEMPLATES = Path(__file__).resolve().parent / "templates"
DISK = "/dev/sda"  # Hyper-V Gen2's SCSI disk and QEMU's virtio-scsi disk alike
# What each kind writes onto its volume (preseed: into the initrd or the ISO itself).
FILES = {"preseed": "preseed.cfg", "autoinstall": "user-data", "kickstart": "ks.cfg",
         "autoyast": "autoinst.xml", "agama": "autoinst.json"}
# Agama's product id for each os-release VERSION_ID of openSUSE Leap (agama-project/agama,
# products.d/leap_160.yaml on the SLE-16 branch).
AGAMA_PRODUCTS = {"16.0": "Leap_16.0"}
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


def agama_post_script(d: Distro, v: dict[str, str]) -> str:
    """Agama's post-installation script, run in the installed system (chroot): the
    build's key for the admin (Agama 16.0's user entry has no key of its own), the admin
    in the sudo group, shim on the removable-media path; SELinux labels restored on what
    it wrote (Leap 16 enforces SELinux)."""
    user, home = v["admin_user"], f"/home/{v['admin_user']}"
    return "\n".join([
        "#!/bin/bash",
        "set -euo pipefail",
        f"install -d -m 700 {home}/.ssh",
        f"echo '{v['public_key']}' > {home}/.ssh/authorized_keys",
        f"chmod 600 {home}/.ssh/authorized_keys",
        f"chown -R {user}: {home}/.ssh",
        f"usermod -aG {d.update.sudo_group} {user}",
        efi_fallback_script(d),
        f"if command -v restorecon >/dev/null; then restorecon -R {home}/.ssh /root/.ssh || true; fi",
        ""])


def render_agama(d: Distro, creds: Credentials, *, salt: str | None = None) -> dict[str, str]:
    """Agama's JSON profile (``autoinst.json``), which Agama finds by itself on a volume
    labelled OEMDRV (or where ``inst.auto=`` points): one partition for the whole disk
    plus the ESP, no LVM, no swap (the product's default btrfs-with-swap proposal is
    replaced by an explicit layout); root with the build's key, the admin user; the SSH
    server, sudo and the Hyper-V daemons installed."""
    v = _common(d, creds, salt)
    product = AGAMA_PRODUCTS.get(d.os_release.version_id)
    if product is None:
        raise GmiError(f"{d.name}: no Agama product id known for openSUSE Leap "
                       f"{d.os_release.version_id} (harness/media/answers AGAMA_PRODUCTS)")
    values = {k: json.dumps(val) for k, val in v.items()} | {
        "product": json.dumps(product),
        "full_name": json.dumps("GMI build admin"),
        "esp_size": json.dumps(f"{d.install.esp_size_mib} MiB"),
        "packages": json.dumps(list(d.install.packages)),
        "post_script": json.dumps(agama_post_script(d, v)),
    }
    text = fill((TEMPLATES / "autoinst.json").read_text(), values)
    json.loads(text)  # (a template mistake is caught here, not by the installer)
    return {FILES["agama"]: text}


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
    if kind == "agama":
        return render_agama(d, creds, salt=salt)
    raise GmiError(f"{d.name} has no answer file (install.answer is empty): it installs with "
                   f"{d.install.method} only")


