"""Guest.run's output keeps the order the guest's commands wrote it in, stdout and stderr
together, whatever order sshd forwards its two pipes in.

A fake at the SSH seam: a paramiko server that runs the script with the real bash, with
stdout and stderr on two pipes as sshd does, and forwards stderr only once the command
has ended (a legal order for sshd, which reads the two pipes as they become ready; CI once
got cloud-init's stdout between a stderr message and its newline this way)."""

from __future__ import annotations

import socket
import subprocess
import threading

import paramiko

from harness.ssh import Guest, KeyPair
from tests.ssh_server import AcceptingServer
from tests.ssh_server import host_key as ssh_host_key


def _serve(listener: socket.socket, host_key: paramiko.PKey) -> None:
    conn, _ = listener.accept()
    transport = paramiko.Transport(conn)
    transport.add_server_key(host_key)
    server = AcceptingServer()
    transport.start_server(server=server)
    chan = transport.accept(60)
    try:
        if chan is None or not server.got_command.wait(60) or server.command != b"bash -s":
            return
        script = b""
        while chunk := chan.recv(65536):
            script += chunk
        proc = subprocess.run(["bash", "-s"], input=script, capture_output=True, timeout=60, check=False)
        chan.sendall(proc.stdout)
        chan.sendall_stderr(proc.stderr)  # stderr last: what a merge of two pipes may do
        chan.send_exit_status(proc.returncode)
        chan.close()
    finally:
        transport.close()
        conn.close()


def test_stderr_and_stdout_arrive_in_the_order_they_were_written():
    host_key = ssh_host_key()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        server = threading.Thread(target=_serve, args=(listener, host_key), daemon=True)
        server.start()
        guest = Guest("127.0.0.1", listener.getsockname()[1], "root", KeyPair.generate("c"))
        guest.wait(60)
        try:
            result = guest.run("echo 'Error:' >&2; echo -n 'errors: x' >&2; echo ' (stdout)'; "
                               "echo 'deprecations: y' >&2; exit 3", check=False, timeout=60)
        finally:
            guest.close()
        server.join(60)
    assert result.rc == 3
    assert result.output.splitlines() == ["Error:", "errors: x (stdout)", "deprecations: y"]
