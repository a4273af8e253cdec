"""A fake at the SSH seam for the tests: a paramiko server that lets any key in and
takes one command (what the test does with it is the test's)."""

from __future__ import annotations

import io
import threading

import paramiko

from harness.ssh import KeyPair


class AcceptingServer(paramiko.ServerInterface):
    """Accepts any public key, one session and the command (kept in ``command``)."""

    def __init__(self) -> None:
        self.command = b""
        self.got_command = threading.Event()

    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_SUCCESSFUL

    def get_allowed_auths(self, username):
        return "publickey"

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        self.command = command
        self.got_command.set()
        return True


def host_key() -> paramiko.PKey:
    return paramiko.Ed25519Key.from_private_key(io.StringIO(KeyPair.generate("h").private_openssh))
