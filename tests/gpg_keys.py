"""OpenPGP keys made for a test run (ed25519, no passphrase: no entropy wait), in
temporary GnuPG homes under /tmp (short paths, for gpg-agent's socket)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class SigningKey:
    name: str
    home: str
    fingerprint: str

    def gpg(self, *args: str, data: bytes | None = None) -> bytes:
        return subprocess.run(["gpg", "--homedir", self.home, "--batch", "--no-tty", "--quiet",
                               "--pinentry-mode", "loopback", "--passphrase", "", *args],
                              input=data, capture_output=True, check=True).stdout

    def public(self, armor: bool = True) -> bytes:
        return self.gpg(*(["--armor"] if armor else []), "--export", self.fingerprint)

    def detach_sign(self, data: bytes, armor: bool = True) -> bytes:
        return self.gpg("--local-user", self.fingerprint, "--detach-sign",
                        *(["--armor"] if armor else []), "--output", "-", data=data)

    def clearsign(self, data: bytes) -> bytes:
        return self.gpg("--local-user", self.fingerprint, "--clearsign", "--output", "-", data=data)

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"], capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


def make_key(name: str) -> SigningKey:
    home = tempfile.mkdtemp(prefix="gmik-", dir="/tmp")
    Path(home).chmod(0o700)
    key = SigningKey(name, home, "")
    key.gpg("--quick-gen-key", f"{name} <{name}@example.org>", "ed25519", "sign", "never")
    listing = key.gpg("--with-colons", "--list-keys").decode()
    key.fingerprint = next(ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr:"))
    return key
