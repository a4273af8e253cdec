"""SSH to guests with paramiko: bounded waits, scripts on stdin, pinned host keys.

Commands run as ``bash -s`` with the script on standard input, so nothing a script
contains (paths with spaces, generated values) is pasted into a command line, and
the guest's process list never shows it.
"""

from __future__ import annotations

import io
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.errors import GuestCommandError, GuestHungError, GuestTimeoutError, mask
from harness.host import hostos

log = logging.getLogger("gmi.ssh")
# paramiko logs every refused banner while a guest boots at ERROR level; the wait
# loop reports what matters itself.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class KeyPair:
    """An Ed25519 key pair; ``private_openssh`` is the key file's text."""

    private_openssh: str = field(repr=False)
    public_openssh: str

    @classmethod
    def generate(cls, comment: str) -> KeyPair:
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode()
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ).decode()
        return cls(private, f"{public} {comment}")

    def pkey(self) -> paramiko.PKey:
        return paramiko.Ed25519Key.from_private_key(io.StringIO(self.private_openssh))

    def write_private(self, path: Path) -> Path:
        """The private key in a file only this user may read (0600; Windows: an ACL)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with hostos.current().private_file(path) as f:
            f.write(self.private_openssh)
        return path


@dataclass(frozen=True)
class Result:
    """Exit code and the combined output (stdout and stderr, in order)."""

    rc: int
    output: str


class _PinnedHostKey(paramiko.MissingHostKeyPolicy):
    """Accept only the host key we expect (read from the image at build time)."""

    def __init__(self, expected: list[str]) -> None:
        self.expected = expected

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        offered = f"{key.get_name()} {key.get_base64()}"
        if not any(offered.split()[:2] == e.split()[:2] for e in self.expected):
            raise paramiko.SSHException(
                f"host key of {hostname} is not the one written into the image "
                f"({key.get_name()} {key.fingerprint}); refusing to talk to it"
            )


class _RecordHostKey(paramiko.MissingHostKeyPolicy):
    """Trust on first use, and remember what was offered."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        self.seen.append(f"{key.get_name()} {key.get_base64()}")


class Guest:
    """An SSH session to a guest. ``alive`` tells whether the VM still runs, and
    ``console`` gives the serial tail for error messages."""

    live = True  # a running system (see :class:`Shell`)

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        key: KeyPair,
        *,
        host_keys: list[str] | None = None,
        alive: Callable[[], bool] = lambda: True,
        console: Callable[[], str] = lambda: "",
        logger: logging.Logger | None = None,
        timer: Callable[[str, float], None] | None = None,
    ) -> None:
        self.host, self.port, self.user, self.key = host, port, user, key
        # told how long each command ("guest") and each wait for SSH ("boot") took
        self.timer = timer
        self.host_keys = host_keys
        self.alive, self.console = alive, console
        self.log = logger or log
        self.client: paramiko.SSHClient | None = None
        self.server_key: str = ""

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def _connect_once(self, timeout: float) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        policy: paramiko.MissingHostKeyPolicy
        policy = _PinnedHostKey(self.host_keys) if self.host_keys else _RecordHostKey()
        client.set_missing_host_key_policy(policy)
        client.connect(
            self.host, self.port, self.user, pkey=self.key.pkey(), timeout=timeout,
            banner_timeout=timeout, auth_timeout=timeout, look_for_keys=False,
            allow_agent=False,
        )
        transport = client.get_transport()
        assert transport is not None
        server = transport.get_remote_server_key()
        self.server_key = f"{server.get_name()} {server.get_base64()}"
        return client

    def _took(self, kind: str, start: float) -> None:
        if self.timer is not None:
            self.timer(kind, time.monotonic() - start)

    def wait(self, timeout: float, what: str = "SSH") -> None:
        """Connect, retrying until ``timeout``; raise with the serial tail when it runs out."""
        start = time.monotonic()
        try:
            self._wait(timeout, what)
        finally:
            self._took("boot", start)

    def _wait(self, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            if not self.alive():
                raise GuestTimeoutError(
                    f"the VM stopped before {what} answered on {self.where}; "
                    f"last console lines: {_tail(self.console())}"
                )
            console = self.console()
            if PANIC in console:  # it will never answer: say so now, not at the timeout
                oops = [ln.strip() for ln in console.splitlines() if OOPS.search(ln)]
                raise GuestTimeoutError(
                    f"the guest's kernel panicked before {what} answered on {self.where}"
                    + (f" ({oops[0]})" if oops else "") + f"; last console lines: {_tail(console)}")
            if (stalls := console.count(STALL)) >= HUNG_STALLS:
                raise GuestHungError(
                    f"the guest's kernel hung in boot before {what} answered on {self.where} "
                    f"({stalls} RCU stall reports are all its console says); "
                    f"last console lines: {_tail(console)}")
            try:
                self.client = self._connect_once(min(20.0, max(1.0, deadline - time.monotonic())))
                return
            except paramiko.AuthenticationException as exc:
                # sshd answers but refuses our key: cloud-init may not have written it yet
                last = f"authentication refused ({exc})"
            except (TimeoutError, OSError, EOFError, paramiko.SSHException) as exc:
                last = f"{type(exc).__name__}: {exc}"
                if "not the one written into the image" in str(exc):
                    raise GuestCommandError(str(exc)) from None
            if time.monotonic() >= deadline:
                raise GuestTimeoutError(
                    f"{what} on {self.where} did not answer within {timeout:.0f} s "
                    f"(last: {last}); last console lines: {_tail(self.console())}"
                )
            time.sleep(3)

    def run(
        self,
        script: str,
        *,
        check: bool = True,
        timeout: float = 1800,
        what: str = "",
        quiet: bool = False,
    ) -> Result:
        """Run ``script`` with ``bash -s`` (``set -euo pipefail``); raise on failure
        when ``check``. Output is logged line by line, secrets masked."""
        if self.client is None:
            raise GuestCommandError(f"not connected to {self.where}")
        label = what or script.strip().splitlines()[0][:80]
        self.log.info("$ %s", mask(label))
        lines: list[str] = []
        start = time.monotonic()
        try:
            rc = self._exec(self.client, script, timeout, lines, quiet)
        except TimeoutError:
            raise GuestCommandError(
                f"'{mask(label)}' gave no sign of life for {timeout:.0f} s in the guest "
                f"{self.where}: it hangs, or the guest does (--command-timeout bounds this)"
            ) from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise GuestCommandError(
                f"SSH to {self.where} broke during '{mask(label)}': {type(exc).__name__}: "
                f"{exc or 'connection lost'}"
            ) from None
        finally:
            self._took("guest", start)
        out = "\n".join(lines)
        if check and rc != 0:
            tail = mask(next((ln for ln in reversed(lines) if ln.strip()), ""))
            raise GuestCommandError(
                f"'{mask(label)}' failed in the guest {self.where} with exit code {rc}: {tail}"
            )
        return Result(rc, out)

    def _exec(self, client: paramiko.SSHClient, script: str, timeout: float, lines: list[str],
              quiet: bool) -> int:
        """Send ``script`` to ``bash -s`` on one channel, collect its output into ``lines``
        (logged as it comes unless ``quiet``); its exit status."""
        transport = client.get_transport()
        assert transport is not None
        chan = transport.open_session(timeout=30)
        chan.settimeout(timeout)
        chan.set_combine_stderr(True)  # one stream: no stall on a full stderr window
        chan.exec_command("bash -s")
        # exec 2>&1: stderr into stdout's pipe in the guest, so the output keeps the order
        # the commands wrote it in (two pipes merged by sshd and the channel need not: seen
        # in CI, cloud-init's stdout landed between a stderr message and its newline)
        chan.sendall(("set -euo pipefail\nexec 2>&1\n" + script + "\n").encode())
        chan.shutdown_write()
        for raw in chan.makefile("rb"):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if not quiet:
                self.log.info("  %s", mask(line))
        rc = chan.recv_exit_status()
        if rc == -1:  # the channel closed without an exit status: the link broke
            raise EOFError("the connection closed before the command finished")
        return int(rc)

    def put(self, path: str, content: str, mode: int = 0o644) -> None:
        """Write ``content`` to ``path`` in the guest (parents created)."""
        self.run(put_script(path, content, mode), what=f"write {path}")

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


PANIC = "Kernel panic - not syncing"
# A kernel hung in boot: the console's last lines are RCU stall reports, one every 21-63 s
# (~8 lines each), and nothing else. A loaded host may starve a booting guest into one
# report (seen in a clone's journal under TCG); three in the 30-line tail, before SSH ever
# answered, is a guest that stopped (seen: a Debian 13 build VM under TCG whose vCPU 1's
# timer never fired again, "Possible timer handling issue on cpu=1", for 600 s).
STALL = "detected stalls on CPUs/tasks"
HUNG_STALLS = 3
OOPS = re.compile(r"\] (Oops|BUG|general protection fault|RIP)[: ]")


def put_script(path: str, content: str, mode: int = 0o644) -> str:
    """The script that writes ``content`` to ``path`` from inside the guest (parents
    created): the file is written by the guest's own tools, so a symlink on the way
    resolves inside the guest, never on the host."""
    eof = f"__GMI_EOF_{uuid.uuid4().hex}__"  # never a line of the content
    return (f"mkdir -p \"$(dirname {_sh(path)})\"\n"
            f"cat > {_sh(path)} <<'{eof}'\n{content.rstrip(chr(10))}\n{eof}\n"
            f"chmod {mode:o} {_sh(path)}")


class Shell(Protocol):
    """How the stages reach the new system: :class:`Guest` (SSH to a running VM) or,
    on the QEMU backend, a chroot of the image's root tree on this host
    (:class:`harness.rootfs.chroot.ChrootShell`). ``live``: a running system
    (services, a mounted ESP, a disk to trim); the stages ask it where the two
    differ."""

    live: bool

    @property
    def where(self) -> str: ...

    def run(self, script: str, *, check: bool = True, timeout: float = 1800, what: str = "",
            quiet: bool = False) -> Result: ...

    def put(self, path: str, content: str, mode: int = 0o644) -> None: ...

    def close(self) -> None: ...


def _tail(console: str, lines: int = 4) -> str:
    kept = [ln.strip() for ln in console.splitlines() if ln.strip()][-lines:]
    return " | ".join(kept) if kept else "(nothing on the serial console)"


def _sh(text: str) -> str:
    import shlex

    return shlex.quote(text)
