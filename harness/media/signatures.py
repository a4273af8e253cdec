"""OpenPGP signatures of the install ISOs' checksum listings, checked with ``gpgv``.

Each distro YAML pins the fingerprints of the keys that sign its listings
(``iso.fingerprints``, published facts). The key itself comes from a keyring package
the host has installed (``iso.keyrings``: files such as
``/usr/share/keyrings/debian-role-keys.gpg``), else from the distro's published key URL
(``iso.key_url``); either way only the keys whose primary fingerprint is pinned are
kept, in a keyring of their own in the cache, and a source without them is refused.
``gpgv`` then checks the listing against that keyring alone: a listing that does not
verify is a one-line :class:`SignatureError` and is never used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import GmiError, MissingToolError
from harness.host import hostos

Fetch = Callable[[str], bytes]
Log = Callable[[str], None]


class SignatureError(GmiError):
    """A checksum listing's signature, or the key to check it with, is not right."""


def normalize(fingerprint: str) -> str:
    return "".join(fingerprint.split()).upper()


def _gpg(home: str, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    if shutil.which("gpg") is None:
        raise MissingToolError("gpg", "gpg", hostos.current().install_hint("gpg", "gpg"))
    return subprocess.run(["gpg", "--homedir", home, "--batch", "--no-tty", "--quiet", *args],
                          input=data, capture_output=True, env={**os.environ, "GNUPGHOME": home})


def pinned_keys(data: bytes, wanted: Iterable[str]) -> tuple[bytes, list[str]]:
    """The keys of ``data`` (a keyring file or an armored key) whose primary
    fingerprint is in ``wanted``, exported alone; and the fingerprints found."""
    want = {normalize(f) for f in wanted}
    with tempfile.TemporaryDirectory(prefix="gmi-keys-") as home:
        _gpg(home, "--import", "--import-options", "import-minimal", data=data)
        listed = _gpg(home, "--with-colons", "--fingerprint", "--list-keys").stdout.decode(errors="replace")
        found, primary = [], False
        for line in listed.splitlines():
            kind = line.split(":", 1)[0]
            if kind == "pub":
                primary = True
            elif kind == "fpr" and primary:
                fpr = line.split(":")[9].upper()
                primary = False
                if fpr in want:
                    found.append(fpr)
        if not found:
            return b"", []
        exported = _gpg(home, "--export", *found).stdout
    return exported, found


@dataclass(frozen=True)
class Keyring:
    path: Path
    fingerprints: tuple[str, ...]
    source: str  # where the keys were taken from


def keyring(fingerprints: Iterable[str], keyrings: Iterable[str], key_url: str, directory: Path,
            fetch: Fetch, log: Log) -> Keyring:
    """A keyring holding only the pinned keys, made once and kept in ``directory``:
    from the first of ``keyrings`` (host keyring package files) that has one of them,
    else from ``key_url``."""
    want = sorted(normalize(f) for f in fingerprints)
    if not want:
        raise SignatureError("no signing-key fingerprint is pinned: add iso.fingerprints to the "
                             "distro YAML")
    name = hashlib.sha256(" ".join(want).encode()).hexdigest()[:16]
    path, source_file = directory / f"keys-{name}.gpg", directory / f"keys-{name}.source"
    if path.is_file() and source_file.is_file():
        found = tuple(f for f in source_file.read_text().split("\n", 1)[0].split() if f in want)
        return Keyring(path, found, source_file.read_text().split("\n", 1)[-1].strip())
    tried = []
    candidates: list[tuple[str, Callable[[], bytes]]] = [
        (f"keyring package file {p}", lambda p=p: Path(p).read_bytes())  # type: ignore[misc]
        for p in keyrings if Path(p).is_file()]
    tried += [f"{p} (not installed)" for p in keyrings if not Path(p).is_file()]
    if key_url:
        candidates.append((key_url, lambda: fetch(key_url)))
    for source, read in candidates:
        try:
            data = read()
        except (OSError, GmiError) as exc:
            tried.append(f"{source} ({exc})")
            continue
        exported, fprs = pinned_keys(data, want)
        if not fprs:
            tried.append(f"{source} (none of the pinned keys in it)")
            continue
        directory.mkdir(parents=True, exist_ok=True)
        for target, content in ((path, exported), (source_file, f"{' '.join(fprs)}\n{source}\n".encode())):
            tmp = target.with_name(target.name + ".part")
            tmp.write_bytes(content)
            os.replace(tmp, target)
        log(f"signing key {fprs[0]} taken from {source}")
        return Keyring(path, tuple(fprs), source)
    raise SignatureError(f"no key with the pinned fingerprint {' or '.join(want)} found: tried "
                         f"{'; '.join(tried) or 'nothing (no iso.keyrings, no iso.key_url)'}; install "
                         "the distro's keyring package or check iso.key_url")


def verify(data: bytes, signature: bytes | None, ring: Keyring, what: str) -> bytes:
    """Check ``data`` (a checksum listing) with ``gpgv`` against ``ring`` alone:
    ``signature`` is its detached signature, or None when ``data`` is clearsigned.
    Returns the signed text (for a clearsigned listing: only what the signature
    covers). A listing that does not verify raises :class:`SignatureError`."""
    if shutil.which("gpgv") is None:
        raise MissingToolError("gpgv", "gpgv", hostos.current().install_hint("gpgv", "gpgv"))
    with tempfile.TemporaryDirectory(prefix="gmi-gpgv-") as home:
        listing, out = Path(home, "listing"), Path(home, "signed")
        listing.write_bytes(data)
        cmd = ["gpgv", "--homedir", home, "--status-fd", "1", "--keyring", str(ring.path.resolve())]
        if signature is None:
            cmd += ["--output", str(out), str(listing)]
        else:
            Path(home, "listing.sig").write_bytes(signature)
            cmd += [str(Path(home, "listing.sig")), str(listing)]
        proc = subprocess.run(cmd, capture_output=True, env={**os.environ, "GNUPGHOME": home})
        status = proc.stdout.decode(errors="replace").splitlines()
        valid = [ln.split()[-1].upper() for ln in status if ln.startswith("[GNUPG:] VALIDSIG ")]
        if proc.returncode == 0 and any(f in ring.fingerprints for f in valid):
            return out.read_bytes() if signature is None else data
    raise SignatureError(f"{what}: {_why(status, proc.stderr.decode(errors='replace'), ring)}; "
                         "not used (a tampered mirror, or a key the YAML does not pin)")


def _why(status: list[str], stderr: str, ring: Keyring) -> str:
    """What gpgv's status lines say went wrong, in words."""
    def first(tag: str) -> list[str]:
        return next((ln.split()[2:] for ln in status if ln.startswith(f"[GNUPG:] {tag} ")), [])

    pinned = " or ".join(ring.fingerprints)
    if first("BADSIG"):
        return f"BAD signature by pinned key {pinned}: the listing was changed after signing"
    if err := first("ERRSIG") or first("NO_PUBKEY"):
        return f"signed by key {err[0]}, not by the pinned key {pinned}"
    if first("EXPKEYSIG") or first("REVKEYSIG"):
        return f"the pinned key {pinned} has expired or been revoked"
    if any("no signature found" in ln or "no valid OpenPGP data" in ln for ln in stderr.splitlines()):
        return "no signature found (not a signature file, or the listing is not signed)"
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    return f"gpgv: {lines[-1] if lines else 'signature not valid'}"
