"""The secrets scan (harness/report/leaks.py), on a run folder laid out as a finished
run leaves it: it finds a build password wherever one is planted, in every form, and
a private key; a clean run has zero hits. make test runs the same scan on its real
builds (the Makefile's ``leaks`` lines)."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import zipfile
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from harness.build import Credentials
from harness.report import leaks

REPO = Path(__file__).resolve().parent.parent
RUN = "20261130-120000-4242"


def key_pair() -> tuple[str, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public


def finished_run(tmp_path: Path, plant: dict[str, bytes] | None = None,
                 disk: bytes = b"", record: dict | None = None) -> tuple[Path, Path, Credentials]:
    """An --out folder as a finished run leaves it, its credentials file, and the
    credentials; ``plant`` adds bytes to files (relative path -> bytes, or
    'zip:<member>' for the archive)."""
    out, creds_dir = tmp_path / "out", tmp_path / "creds"
    creds = Credentials.generate("gmiadmin", "t")
    creds.record(creds_dir, f"GMI Debian 12 {RUN}")
    run = out / "runs" / RUN
    files = {
        f"runs/{RUN}/logs/debian-12/build.log": b"12:00:00 $ chpasswd (stdin)\n",
        f"runs/{RUN}/logs/debian-12/build.serial.log": b"\x1b[2JDebian GNU/Linux 12 debian-12 ttyS0\n",
        f"runs/{RUN}/junit.xml": b"<testsuites><testsuite name='pytest'/></testsuites>\n",
        f"runs/{RUN}/report.html": b"<html><body>report</body></html>\n",
        f"runs/{RUN}/allure-results/1-result.json": b'{"name": "test_user_as_seeded"}\n',
        f"runs/{RUN}/signoff.html": b"<html>sign-off</html>\n",
        f"runs/{RUN}/signoff.json": b"{}\n",
        f"runs/{RUN}/settings.txt": b"hyperv_password = ***  (default)\n",
        "gmi-repository.dist.yml": b"Debian-12: []\n",
    }
    for rel, data in (plant or {}).items():
        if not rel.startswith("zip:"):
            files[rel] = files.get(rel, b"") + data
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    (out / "runs" / "latest").symlink_to(RUN)
    members = {"GMI-Debian-12.yml": b"name: GMI Debian 12\n", "GMI-Debian-12.md": b"# readme\n",
               "gmi-build-record.yml": yaml.safe_dump(record or {}).encode(),
               "Virtual Hard Disks/GMI Debian 12.vhdx": b"vhdxfile" + disk}
    for rel, data in (plant or {}).items():
        if rel.startswith("zip:"):
            members[rel[4:]] = members.get(rel[4:], b"") + data
    with zipfile.ZipFile(out / "GMI-Debian-12.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    assert run.is_dir()
    return out, creds_dir, creds


def scan(out: Path, creds_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.report.leaks", "scan", str(out),
                           "--credentials-dir", str(creds_dir), *extra], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_clean_run_has_zero_hits(tmp_path: Path):
    out, creds_dir, creds = finished_run(tmp_path)
    proc = scan(out, creds_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith(": 0 hits"), proc.stdout
    assert "2 passwords of 1 run(s)" in proc.stdout
    assert creds.root_password not in proc.stdout + proc.stderr


def b64_inside(secret: str, shift: int) -> bytes:
    """``secret`` base64-encoded inside a longer text, at one of three alignments."""
    return base64.b64encode(b"x" * shift + secret.encode() + b"tail")


@pytest.mark.parametrize("where", [
    f"runs/{RUN}/logs/debian-12/build.log", f"runs/{RUN}/logs/debian-12/build.serial.log",
    f"runs/{RUN}/junit.xml", f"runs/{RUN}/report.html", f"runs/{RUN}/allure-results/1-result.json",
    f"runs/{RUN}/signoff.html", "zip:GMI-Debian-12.md", "zip:gmi-build-record.yml",
    "zip:Virtual Hard Disks/GMI Debian 12.vhdx"])
@pytest.mark.parametrize("form", ["plain", "base64-0", "base64-1", "base64-2", "url"])
def test_a_password_is_found_wherever_and_however_it_is(tmp_path: Path, where: str, form: str):
    secret = "Zq7Rm2Lp9Xw4Tv6Ns1Bk3Hd/+ &"  # (URL-quoting changes it)
    data = {"plain": secret.encode(), "url": urllib.parse.quote(secret, safe="").encode(),
            **{f"base64-{k}": b64_inside(secret, k) for k in range(3)}}[form]
    out, creds_dir, creds = finished_run(tmp_path, {where: b"...." + data + b"...."})
    (creds_dir / f"GMI-Debian-12-{RUN}.txt").write_text(
        f"GMI Debian 12 {RUN}\n  root:  {creds.root_password}\n  gmiadmin: {secret}\n")
    proc = scan(out, creds_dir)
    assert proc.returncode == 1, proc.stdout
    shown = where.replace("zip:", "GMI-Debian-12.zip!")
    assert f"leak: gmiadmin password of GMI-Debian-12-{RUN}.txt (" in proc.stdout, proc.stdout
    assert f" in {shown} at byte " in proc.stdout, proc.stdout
    assert secret not in proc.stdout + proc.stderr


def test_a_hit_across_the_scanners_chunks_is_found_once(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(leaks, "CHUNK", 7)
    stream = io.BytesIO(b"0123456789secretPASSWORD0123" * 3)
    hits = list(leaks.scan_stream(stream, "f", {b"secretPASSWORD": "pw"}))
    assert [h.offset for h in hits] == [10, 38, 66]


def test_any_private_key_in_a_report_is_a_hit(tmp_path: Path):
    private, _ = key_pair()
    out, creds_dir, _ = finished_run(tmp_path, {f"runs/{RUN}/report.html": private.encode()})
    proc = scan(out, creds_dir)
    assert proc.returncode == 1
    assert f"leak: a private key (PEM) in runs/{RUN}/report.html at byte " in proc.stdout


def test_in_the_disk_image_the_builds_keys_are_hits_and_shipped_ones_are_counted(tmp_path: Path):
    """A disk holds software's own keys (libgnutls's self-test keys, in every debian-12
    image): those are counted; a key of this build (its public half in the build
    record) fails the scan. A bare PEM header (a constant in a binary) is no key."""
    shipped, _ = key_pair()
    build, build_public = key_pair()
    header = b"-----BEGIN OPENSSH " + leaks.KEY_TAIL  # a bare header, as binaries hold it
    disk = b"\0" * 100 + header + b"\0%s\0" + shipped.encode() + b"\0" * 50
    record = {"build_host_keys": [" ".join(build_public.split()[:2])]}
    out, creds_dir, _ = finished_run(tmp_path, disk=disk, record=record)
    proc = scan(out, creds_dir)
    assert proc.returncode == 0, proc.stdout
    assert "0 hits (1 private keys of shipped software in the disk images: not the build's)" in proc.stdout
    out, creds_dir, _ = finished_run(tmp_path / "2", disk=disk + build.encode(), record=record)
    proc = scan(out, creds_dir)
    assert proc.returncode == 1
    assert "leak: a private key (PEM) of this build in GMI-Debian-12.zip!Virtual Hard Disks/" in proc.stdout


def test_no_credentials_for_the_runs_is_an_error_not_a_pass(tmp_path: Path):
    out, _, _ = finished_run(tmp_path)
    proc = scan(out, tmp_path / "elsewhere")
    assert proc.returncode == 2 and proc.stderr.startswith("leaks: no credentials file in ")


def test_the_command_line_watch_finds_a_password_on_a_command_line(tmp_path: Path):
    """The watch runs beside a build; a credentials file appears (provision), then a
    process shows a password in its argv: the hit names pid and program, not the line."""
    creds_dir, report = tmp_path / "creds", tmp_path / "watch.json"
    watcher = subprocess.Popen([sys.executable, "-m", "harness.report.leaks", "watch", str(report),
                                "--credentials-dir", str(creds_dir)],
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    creds = Credentials.generate("gmiadmin", "watch")
    time.sleep(1)
    creds.record(creds_dir, f"GMI Debian 12 {RUN}")
    leaky = subprocess.Popen(["bash", "-c", "sleep 600; :", creds.root_password])
    quiet = subprocess.Popen(["bash", "-c", "sleep 601; :"])
    try:  # until the watch has seen it (a guard of 120 s, however loaded the machine)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
                report.exists() and json.loads(report.read_text())["hits"]):
            time.sleep(0.2)
        time.sleep(1)  # a few more samples: the quiet one must stay out of the hits
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(120)
        leaky.kill()
        quiet.kill()
    data = json.loads(report.read_text())
    assert data["credentials_files"] == 1 and data["samples"] >= 1
    assert [(h["pid"], h["program"]) for h in data["hits"]] == [(leaky.pid, "bash")]
    assert creds.root_password not in report.read_text()
    out, _, _ = finished_run(tmp_path / "run")
    proc = scan(out, tmp_path / "run" / "creds", "--watch", str(report))
    assert proc.returncode == 1
    assert f"leak: root password of GMI-Debian-12-{RUN}.txt (plain) on the command line of pid " \
           f"{leaky.pid} (bash)" in proc.stdout


def test_a_watch_that_saw_no_credentials_checked_nothing(tmp_path: Path):
    report = tmp_path / "watch.json"
    report.write_text(json.dumps({"samples": 9, "processes": 9, "credentials_files": 0, "hits": []}))
    out, creds_dir, _ = finished_run(tmp_path)
    proc = scan(out, creds_dir, "--watch", str(report))
    assert proc.returncode == 1 and "it checked nothing" in proc.stdout
