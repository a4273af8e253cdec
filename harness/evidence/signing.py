"""Signed checksums: ``GMI-<Os>-<Version>.SHA256SUMS`` lists every output of an export
(the archive, its SBOMs, its provenance) as ``sha256sum -c`` reads it, and with
``--sign-key`` it is signed beside it:

- an OpenPGP key (a secret key file, armored or binary, or the id of a key in your gpg
  keyring): ``.SHA256SUMS.gpg``, a detached binary signature (``gpg --detach-sign``);
  verify with ``gpgv --keyring KEY.gpg GMI-...SHA256SUMS.gpg GMI-...SHA256SUMS``;
- an SSH private key: ``.SHA256SUMS.sig`` (``ssh-keygen -Y sign -n file``); verify with
  ``ssh-keygen -Y verify -f allowed_signers -I gmi-harness -n file -s ...sig < ...SHA256SUMS``.

``gmi --gmi ARCHIVE --verify-key PUBLIC_KEY`` checks the signature, then the archive's
line in the listing, before anything else reads the archive; either failing refuses the
archive in one line. The same key signs the provenance's DSSE envelope
(:func:`sign_bytes`).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import GmiError, MissingToolError
from harness.host import hostos
from harness.host.tools import sha256_file
from harness.media import signatures

SUMS_SUFFIX = ".SHA256SUMS"
SIG_SUFFIX = {"openpgp": ".gpg", "ssh": ".sig"}
SSH_NAMESPACE = "file"  # ssh-keygen -Y's namespace for signed files
SSH_IDENTITY = "gmi-harness"  # the principal in the allowed_signers file made for --verify-key
ARMOR = ("-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----")


class SigningError(GmiError):
    """A key cannot sign, or a signature does not verify."""


@dataclass(frozen=True)
class Key:
    """A signing or verifying key: its kind (openpgp, ssh), where it is (a file, or a
    key id in the user's gpg keyring) and its id (an OpenPGP fingerprint, or SSH's
    ``SHA256:`` fingerprint)."""

    kind: str
    where: str
    keyid: str
    in_keyring: bool = False  # an OpenPGP key id in the user's own keyring


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingToolError(name, package, hostos.current().install_hint(name, package))
    return path


def _run(cmd: list[str], data: bytes | None = None, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, input=data, capture_output=True, timeout=120,
                          env={**os.environ, **(env or {})}, check=False)


def _last_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    lines = [ln.strip() for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit status {proc.returncode}"


def kind_of(path: Path) -> str:
    """What a key file holds: ``ssh`` (an OpenSSH private or public key) or ``openpgp``."""
    head = path.read_bytes()[:200]
    text = head.decode("ascii", "replace").lstrip()
    # (OpenSSH's armour is only ever its private key's: public keys are one line)
    if text.startswith("-----BEGIN OPENSSH ") or re.match(
            r"(ssh-(ed25519|rsa|dss)|ecdsa-sha2-\S+|sk-\S+) AAAA", text):
        return "ssh"
    if text.startswith("-----BEGIN PGP") or (head and head[0] & 0x80):
        return "openpgp"
    raise SigningError(f"{path}: neither an OpenPGP key nor an OpenSSH key")


# ----------------------------------------------------------------------- OpenPGP


@contextlib.contextmanager
def _gnupg_home() -> Iterator[str]:
    """A throwaway GnuPG home; its agent is stopped when it goes (nothing left running)."""
    home = tempfile.mkdtemp(prefix="gmi-sign-")
    try:
        yield home
    finally:
        if shutil.which("gpgconf"):
            _run(["gpgconf", "--homedir", home, "--kill", "all"])
        shutil.rmtree(home, ignore_errors=True)


def _fingerprints(home: str, secret: bool) -> list[str]:
    listing = "--list-secret-keys" if secret else "--list-keys"
    out = signatures._gpg(home, "--with-colons", "--fingerprint", listing).stdout.decode(errors="replace")
    found, primary = [], False
    for line in out.splitlines():
        kind = line.split(":", 1)[0]
        if kind in ("pub", "sec"):
            primary = True
        elif kind == "fpr" and primary:
            found.append(line.split(":")[9].upper())
            primary = False
    return found


def _gpg_sign(key: Key, data: bytes) -> bytes:
    """A detached binary OpenPGP signature of ``data``."""
    _tool("gpg", "gpg")
    if key.in_keyring:
        proc = _run(["gpg", "--batch", "--no-tty", "--local-user", key.where, "--detach-sign"], data)
    else:
        with _gnupg_home() as home:
            signatures._gpg(home, "--import", data=Path(key.where).read_bytes())
            proc = _run(["gpg", "--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback",
                         "--passphrase", "", "--local-user", key.keyid, "--detach-sign"], data,
                        {"GNUPGHOME": home})
    if proc.returncode != 0 or not proc.stdout:
        raise SigningError(f"gpg could not sign with {key.where}: {_last_line(proc)} (a key with a "
                           "passphrase: load it into your gpg agent and give its key id)")
    return proc.stdout


def _gpg_verify(key: Key, data: bytes, signature: bytes, what: str) -> None:
    with _gnupg_home() as home:
        ring = Path(home, "verify.gpg")
        signatures._gpg(home, "--import", data=Path(key.where).read_bytes())
        fprs = _fingerprints(home, secret=False)
        ring.write_bytes(signatures._gpg(home, "--export", *fprs).stdout)
        try:
            signatures.verify(data, signature, signatures.Keyring(ring, tuple(fprs), key.where), what)
        except signatures.SignatureError as exc:
            why = str(exc).replace("; not used (a tampered mirror, or a key the YAML does not pin)", "")
            raise SigningError(why.replace("pinned key", "given key")) from None


# ----------------------------------------------------------------------- SSH


def _ssh_sign(key: Key, data: bytes) -> bytes:
    """``ssh-keygen -Y sign``'s signature of ``data``: the SSHSIG blob (its armor's body)."""
    tool = _tool("ssh-keygen", "openssh-client")
    with tempfile.TemporaryDirectory(prefix="gmi-sign-") as tmp:
        message = Path(tmp, "message")
        message.write_bytes(data)
        proc = _run([tool, "-Y", "sign", "-q", "-f", key.where, "-n", SSH_NAMESPACE, str(message)],
                    b"")
        sig = message.with_name("message.sig")
        if proc.returncode != 0 or not sig.is_file():
            raise SigningError(f"ssh-keygen could not sign with {key.where}: {_last_line(proc)} "
                               "(a key with a passphrase: add it to ssh-agent)")
        return _unarmor(sig.read_text())


def _unarmor(text: str) -> bytes:
    body = text.strip().removeprefix(ARMOR[0]).removesuffix(ARMOR[1])
    return base64.b64decode("".join(body.split()))


def _armor(blob: bytes) -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(blob).decode(), 70))
    return f"{ARMOR[0]}\n{body}\n{ARMOR[1]}\n"


def _ssh_verify(key: Key, data: bytes, signature: bytes, what: str) -> None:
    tool = _tool("ssh-keygen", "openssh-client")
    public = Path(key.where).read_text().strip().splitlines()[0]
    with tempfile.TemporaryDirectory(prefix="gmi-verify-") as tmp:
        allowed, sig = Path(tmp, "allowed_signers"), Path(tmp, "message.sig")
        allowed.write_text(f'{SSH_IDENTITY} namespaces="{SSH_NAMESPACE}" {public}\n')
        sig.write_text(_armor(signature))
        proc = _run([tool, "-Y", "verify", "-f", str(allowed), "-I", SSH_IDENTITY, "-n", SSH_NAMESPACE,
                     "-s", str(sig)], data)
    if proc.returncode != 0:
        said = (proc.stdout + proc.stderr).decode(errors="replace").strip().splitlines()
        raise SigningError(f"{what}: the signature does not verify with {Path(key.where).name} "
                           f"(changed after signing, or another key signed it; ssh-keygen: "
                           f"{said[-1] if said else f'exit status {proc.returncode}'})")


# ----------------------------------------------------------------------- either


def signing_key(value: str) -> Key:
    """The key ``--sign-key`` names, checked: a file (OpenPGP secret key or OpenSSH
    private key), or an OpenPGP key id in your gpg keyring."""
    path = Path(value).expanduser()
    if path.is_file():
        kind = kind_of(path)
        if kind == "ssh":
            tool = _tool("ssh-keygen", "openssh-client")
            fpr = _run([tool, "-l", "-f", str(path)])
            if fpr.returncode != 0 or b"PRIVATE" not in path.read_bytes()[:60]:
                raise SigningError(f"--sign-key {value}: not an OpenSSH private key "
                                   f"({_last_line(fpr) if fpr.returncode else 'a public key'})")
            return Key("ssh", str(path), fpr.stdout.decode().split()[1])
        _tool("gpg", "gpg")
        with _gnupg_home() as home:
            signatures._gpg(home, "--import", data=path.read_bytes())
            fprs = _fingerprints(home, secret=True)
        if not fprs:
            raise SigningError(f"--sign-key {value}: no OpenPGP secret key in it")
        return Key("openpgp", str(path), fprs[0])
    if not re.fullmatch(r"[0-9A-Fa-f]{8,40}|\S+@\S+", value):
        raise SigningError(f"--sign-key {value}: no such file, and not an OpenPGP key id or address")
    _tool("gpg", "gpg")
    proc = _run(["gpg", "--batch", "--with-colons", "--fingerprint", "--list-secret-keys", value])
    fprs = [ln.split(":")[9] for ln in proc.stdout.decode(errors="replace").splitlines()
            if ln.startswith("fpr:")]
    if proc.returncode != 0 or not fprs:
        raise SigningError(f"--sign-key {value}: no such secret key in your gpg keyring")
    return Key("openpgp", value, fprs[0].upper(), in_keyring=True)


def verifying_key(value: str) -> Key:
    """The public key ``--verify-key`` names: an OpenPGP public key file or an OpenSSH
    public key (one ``ssh-ed25519 AAAA...`` line)."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise SigningError(f"--verify-key {value}: no such file (an OpenPGP public key or an "
                           "OpenSSH public key)")
    kind = kind_of(path)
    if kind == "ssh" and b"PRIVATE" in path.read_bytes()[:60]:
        raise SigningError(f"--verify-key {value}: a private key; give its public key (.pub)")
    return Key(kind, str(path), "")


def sign_bytes(key: Key, data: bytes) -> bytes:
    return _ssh_sign(key, data) if key.kind == "ssh" else _gpg_sign(key, data)


def verify_bytes(key: Key, data: bytes, signature: bytes, what: str) -> None:
    """Raise :class:`SigningError` unless ``signature`` is ``key``'s over ``data``."""
    if key.kind == "ssh":
        _ssh_verify(key, data, signature, what)
    else:
        _gpg_verify(key, data, signature, what)


# ----------------------------------------------------------------------- the listing


def sums_path(archive: Path) -> Path:
    return archive.with_name(archive.name.removesuffix(".zip") + SUMS_SUFFIX)


def write_sums(files: Iterable[Path], target: Path) -> Path:
    """``sha256sum``'s listing of ``files`` (all in ``target``'s folder), written atomically."""
    lines = [f"{sha256_file(f)}  {f.name}\n" for f in files]
    tmp = target.with_name(target.name + ".part")
    tmp.write_text("".join(lines))
    tmp.replace(target)
    return target


def sign_file(key: Key, path: Path) -> Path:
    """The detached signature of ``path`` beside it (``.gpg`` or ``.sig``, as its tool writes it)."""
    sig = path.with_name(path.name + SIG_SUFFIX[key.kind])
    blob = sign_bytes(key, path.read_bytes())
    tmp = sig.with_name(sig.name + ".part")
    if key.kind == "ssh":
        tmp.write_text(_armor(blob))
    else:
        tmp.write_bytes(blob)
    tmp.replace(sig)
    return sig


def read_signature(path: Path, kind: str) -> bytes:
    return _unarmor(path.read_text()) if kind == "ssh" else path.read_bytes()


def verify_archive(archive: Path, key_file: str) -> str:
    """Before ``--gmi`` reads ``archive``: the signature of its SHA256SUMS by the key in
    ``key_file``, then the archive's own line in it. Returns what was verified (one line);
    raises :class:`SigningError` (one line) otherwise. Nothing is written."""
    key = verifying_key(key_file)
    sums = sums_path(archive)
    sig = sums.with_name(sums.name + SIG_SUFFIX[key.kind])
    if not sums.is_file() or not sig.is_file():
        raise SigningError(f"--verify-key: {archive.name} has no signed checksums beside it "
                           f"({sums.name} and {sig.name}); it was not signed with a key of this kind")
    listing = sums.read_bytes()
    verify_bytes(key, listing, read_signature(sig, key.kind), f"{sig.name} (for {archive.name})")
    wanted = {name: digest for digest, _, name in
              (line.partition("  ") for line in listing.decode(errors="replace").splitlines())}
    if archive.name not in wanted:
        raise SigningError(f"--verify-key: {sums.name} is signed but does not list {archive.name}")
    if sha256_file(archive) != wanted[archive.name]:
        raise SigningError(f"--verify-key: {archive.name} changed since it was signed: its SHA-256 "
                           f"is not the one {sums.name} lists")
    return f"{archive.name}: signature by {Path(key_file).name} verified ({sig.name})"
