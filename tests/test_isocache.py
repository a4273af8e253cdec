"""The ISO cache against a local HTTP server on 127.0.0.1: download once, resume with
Range, refuse a bad checksum (and never keep the bad file), one download for
parallel callers, local --iso files verified."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import lzma
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_server import Server, serving

from harness import distro
from harness.errors import GmiError
from harness.media import isocache
from harness.settings import resolve

PAYLOAD = bytes(range(256)) * 4096 * 3  # 3 MiB, several chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server() -> Iterator[Server]:
    with serving({"/img.iso": PAYLOAD}) as s:
        yield s


def quiet(_: str) -> None:
    pass


def test_downloads_once_then_verifies_from_cache(server: Server, tmp_path: Path):
    path, sha = isocache.cached(f"{server.url}/img.iso", SHA, tmp_path, quiet)
    assert path == tmp_path / "img.iso" and path.read_bytes() == PAYLOAD and sha == SHA
    assert (tmp_path / "img.iso.sha256").read_text().strip() == SHA
    again, _ = isocache.cached(f"{server.url}/img.iso", SHA, tmp_path, quiet)
    assert again == path and len(server.gets()) == 1  # second use: verified, not fetched
    assert not (tmp_path / "img.iso.part").exists()


def test_resumes_a_partial_download_with_range(server: Server, tmp_path: Path):
    (tmp_path / "img.iso.part").write_bytes(PAYLOAD[:1_000_000])
    path, _ = isocache.cached(f"{server.url}/img.iso", SHA, tmp_path, quiet)
    assert server.gets() == ["bytes=1000000-"]
    assert path.read_bytes() == PAYLOAD


def test_broken_off_download_is_resumed_by_the_next_run(server: Server, tmp_path: Path):
    server.cut_after = 700_000
    with pytest.raises(GmiError, match=r"ended early|broke off"):
        isocache.cached(f"{server.url}/img.iso", SHA, tmp_path, quiet)
    assert (tmp_path / "img.iso.part").stat().st_size == 700_000
    assert not (tmp_path / "img.iso").exists()
    server.cut_after = None
    path, _ = isocache.cached(f"{server.url}/img.iso", SHA, tmp_path, quiet)
    assert server.gets()[-1] == "bytes=700000-" and path.read_bytes() == PAYLOAD


def test_server_without_range_support_restarts_cleanly(server: Server, tmp_path: Path):
    server.honour_range = False
    (tmp_path / "img.iso.part").write_bytes(b"junk" * 1000)
    path, _ = isocache.cached(f"{server.url}/img.iso", SHA, tmp_path, quiet)
    assert path.read_bytes() == PAYLOAD  # not junk + payload


def test_complete_part_file_is_finished_without_a_body(server: Server, tmp_path: Path):
    (tmp_path / "img.iso.part").write_bytes(PAYLOAD)
    path, _ = isocache.cached(f"{server.url}/img.iso", SHA, tmp_path, quiet)  # server says 416
    assert path.read_bytes() == PAYLOAD


def test_mismatch_on_download_is_an_error_and_nothing_is_kept(server: Server, tmp_path: Path):
    wrong = "0" * 64
    with pytest.raises(GmiError) as exc:
        isocache.cached(f"{server.url}/img.iso", wrong, tmp_path, quiet)
    message = str(exc.value)
    assert "\n" not in message and "SHA-256" in message and "deleted" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.iso.lock"]


def test_corrupted_cached_copy_is_moved_aside_not_used(server: Server, tmp_path: Path):
    path, _ = isocache.cached(f"{server.url}/img.iso", SHA, tmp_path, quiet)
    path.write_bytes(b"bit rot" + PAYLOAD[7:])
    with pytest.raises(GmiError, match=r"cached img\.iso: SHA-256 .* moved aside to img\.iso\.bad"):
        isocache.cached(f"{server.url}/img.iso", SHA, tmp_path, quiet)
    assert not path.exists() and (tmp_path / "img.iso.bad").exists()
    fresh, _ = isocache.cached(f"{server.url}/img.iso", SHA, tmp_path, quiet)  # next run: anew
    assert fresh.read_bytes() == PAYLOAD and len(server.gets()) == 2


def test_a_file_put_into_the_cache_by_hand_is_verified_not_downloaded(server: Server, tmp_path: Path):
    (tmp_path / "img.iso").write_bytes(PAYLOAD)
    path, _ = isocache.cached(f"{server.url}/img.iso", SHA, tmp_path, quiet)
    assert path.read_bytes() == PAYLOAD and server.gets() == []
    assert (tmp_path / "img.iso.sha256").read_text().strip() == SHA
    (tmp_path / "img.iso.sha256").unlink()
    path.write_bytes(b"not it")
    isocache.cached(f"{server.url}/img.iso", SHA, tmp_path, quiet)  # wrong: set aside, downloaded
    assert path.read_bytes() == PAYLOAD and (tmp_path / "img.iso.bad").read_bytes() == b"not it"


def test_parallel_callers_download_once(server: Server, tmp_path: Path):
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(isocache.cached(f"{server.url}/img.iso", SHA, tmp_path, quiet)[0])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(results) == 4
    assert len(server.gets()) == 1


def test_expected_hash_from_checksum_file_only_when_nothing_is_cached(server: Server, tmp_path: Path):
    server.files["/SHA256SUMS"] = f"{'1' * 64}  other.iso\n{SHA} *img.iso\n".encode()
    url = f"{server.url}/img.iso"

    def lookup() -> str:
        return isocache.expected_sha256(url, "", f"{server.url}/SHA256SUMS", tmp_path)

    isocache.cached(url, lookup, tmp_path, quiet)
    isocache.cached(url, lookup, tmp_path, quiet)
    assert len(server.gets("/SHA256SUMS")) == 1


@pytest.mark.parametrize("text, name, expected", [
    (f"{SHA}  debian-12.12.0-amd64-netinst.iso\n{'2' * 64}  other.iso\n",
     "debian-12.12.0-amd64-netinst.iso", SHA),
    (f"{'2' * 64} *a.iso\n{SHA} *ubuntu-24.04.3-live-server-amd64.iso\n",
     "ubuntu-24.04.3-live-server-amd64.iso", SHA),
    ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n# Fedora-Server-netinst-x86_64-42-1.1.iso: "
     f"1 bytes\nSHA256 (Fedora-Server-netinst-x86_64-42-1.1.iso) = {SHA.upper()}\n"
     f"SHA256 (other.iso) = {'3' * 64}\n-----BEGIN PGP SIGNATURE-----\nxx\n",
     "Fedora-Server-netinst-x86_64-42-1.1.iso", SHA),
    (f"{SHA}  openSUSE-Leap-15.6-NET-x86_64-Build710.3-Media.iso\n",
     "openSUSE-Leap-15.6-NET-x86_64-Media.iso", SHA),
    (f"{'4' * 64}  ./netboot/debian-installer/amd64/initrd.gz\n"
     f"{SHA}  ./netboot/debian-installer/amd64/linux\n",
     "netboot/debian-installer/amd64/linux", SHA),
])
def test_checksum_file_formats(text: str, name: str, expected: str):
    assert isocache.parse_checksums(text, name) == expected


def test_checksum_file_without_the_file_says_to_update_the_url():
    with pytest.raises(GmiError, match=r"x\.iso is not listed in the checksum file \(2 entries\): .*update"):
        isocache.parse_checksums(f"{SHA}  a.iso\n{SHA}  b.iso\n", "x.iso")


def _distro_served_by(server: Server) -> distro.Distro:
    """fedora-42 with its release folder on the local server, listing img-42-1.1.iso
    (an unsigned listing: the signature tests are in test_isolisting.py)."""
    d = distro.load("fedora-42")
    assert d.iso is not None
    server.files["/CHECKSUM"] = f"SHA256 (img-42-1.1.iso) = {SHA}\n".encode()
    server.files["/img-42-1.1.iso"] = PAYLOAD
    iso = dataclasses.replace(d.iso, folder=f"{server.url}/", pattern="img-{version}.iso",
                              checksums="CHECKSUM", archive="", signature="", unsigned="a test")
    return dataclasses.replace(d, iso=iso)


def test_resolve_downloads_the_iso_the_listing_names(server: Server, tmp_path: Path):
    d = _distro_served_by(server)
    settings = resolve({"iso_cache": str(tmp_path)}, env={})
    record: dict[str, object] = {}
    path, sha = isocache.resolve(d, settings, log=quiet, record=record)
    assert path == tmp_path / "img-42-1.1.iso" and sha == SHA
    assert record["install_iso"] == {
        "file": "img-42-1.1.iso", "url": f"{server.url}/img-42-1.1.iso", "sha256": SHA,
        "version": "42-1.1", "listing": f"{server.url}/CHECKSUM",
        "signature": "none published upstream (a test)"}


def test_a_newer_iso_upstream_is_downloaded_and_offline_the_cache_serves(server: Server, tmp_path: Path):
    """A new point release (or snapshot) is a new name in the listing: downloaded anew;
    when upstream cannot be reached, the newest cached copy is used."""
    d = _distro_served_by(server)
    settings = resolve({"iso_cache": str(tmp_path)}, env={})
    isocache.resolve(d, settings, log=quiet)
    assert isocache.resolve(d, settings, log=quiet) == (tmp_path / "img-42-1.1.iso", SHA)
    assert len(server.gets("/img-42-1.1.iso")) == 1  # unchanged upstream: no new download
    newer = b"the next point release" * 1000
    server.files["/img-42-1.6.iso"] = newer
    server.files["/CHECKSUM"] += f"SHA256 (img-42-1.6.iso) = {hashlib.sha256(newer).hexdigest()}\n".encode()
    path, sha = isocache.resolve(d, settings, log=quiet)
    assert path == tmp_path / "img-42-1.6.iso" and path.read_bytes() == newer
    del server.files["/CHECKSUM"]  # the mirror is unreachable now
    lines: list[str] = []
    record: dict[str, dict[str, str]] = {}
    assert isocache.resolve(d, settings, log=lines.append, record=record) == (path, sha)
    assert any("using the cached img-42-1.6.iso" in ln for ln in lines)
    assert record["install_iso"]["source"] == "the cache (upstream unreachable)"


def test_a_respun_iso_under_the_same_name_is_downloaded_anew(server: Server, tmp_path: Path):
    d = _distro_served_by(server)
    settings = resolve({"iso_cache": str(tmp_path)}, env={})
    isocache.resolve(d, settings, log=quiet)
    respun = b"respun" * 5000
    server.files["/img-42-1.1.iso"] = respun
    server.files["/CHECKSUM"] = f"SHA256 (img-42-1.1.iso) = {hashlib.sha256(respun).hexdigest()}\n".encode()
    lines: list[str] = []
    path, _ = isocache.resolve(d, settings, log=lines.append)
    assert path.read_bytes() == respun and any("has changed upstream" in ln for ln in lines)


def test_local_iso_is_verified_against_the_distro_listing(server: Server, tmp_path: Path):
    d = _distro_served_by(server)
    good, bad = tmp_path / "good.iso", tmp_path / "bad.iso"
    good.write_bytes(PAYLOAD)
    bad.write_bytes(PAYLOAD[:-1] + b"x")
    settings = resolve({"iso_cache": str(tmp_path / "cache"), "iso": str(good)}, env={})
    record: dict[str, dict[str, str]] = {}
    assert isocache.resolve(d, settings, log=quiet, record=record) == (good, SHA)
    assert record["install_iso"]["source"] == f"--iso, as listed for {server.url}/img-42-1.1.iso"
    with pytest.raises(GmiError, match=r"--iso bad\.iso: SHA-256 .* not used; pass --iso-version"):
        isocache.resolve(d, settings, iso=bad, log=quiet)
    assert bad.exists()  # the user's own file is never moved or deleted
    custom = hashlib.sha256(bad.read_bytes()).hexdigest()
    assert isocache.resolve(d, settings, iso=bad, iso_sha256=custom, log=quiet) == (bad, custom)
    assert len(server.gets("/img-42-1.1.iso")) == 0  # a local file: nothing downloaded
    with pytest.raises(GmiError, match="no such file"):
        isocache.resolve(d, settings, iso=tmp_path / "missing.iso", log=quiet)


def test_progress_draws_one_live_line_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    p = isocache.Progress("img.iso", 100 * 2**20, quiet, stream=out)
    p.update(50 * 2**20)
    p.update(100 * 2**20)
    p.finish()
    text = out.getvalue()
    assert text.startswith("\rimg.iso [") and "100% 100/100 MiB" in text and text.endswith("\n")


def test_progress_logs_every_tenth_without_a_terminal():
    lines: list[str] = []
    p = isocache.Progress("img.iso", 1000, lines.append, stream=io.StringIO())
    for done in range(0, 1001, 50):
        p.update(done)
    assert len(lines) == 11 and "100%" in lines[-1]


def _netboot_deb(tmp_path: Path, version: str) -> bytes:
    """A real .deb (dpkg-deb --build) shaped like debian-installer-12-netboot-amd64."""
    root = tmp_path / f"pkg-{version}"
    images = root / "usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64"
    images.mkdir(parents=True)
    (images / "linux").write_bytes(b"kernel " + version.encode())
    (images / "initrd.gz").write_bytes(b"initrd " + version.encode())
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        f"Package: debian-installer-12-netboot-amd64\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: test <t@example.org>\nDescription: netboot images\n")
    deb = tmp_path / f"netboot-{version}.deb"
    subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(root), str(deb)], check=True,
                   capture_output=True)
    return deb.read_bytes()


def test_netboot_falls_back_to_the_archives_netboot_package(server: Server, tmp_path: Path):
    """The images folder is not served (as on our machines): the kernel and initrd come
    out of the newest netboot .deb the Packages index lists, verified by its SHA-256."""
    old, new = _netboot_deb(tmp_path, "20230607+deb12u9"), _netboot_deb(tmp_path, "20230607+deb12u15")
    index = ""
    for version, data in (("20230607+deb12u15", new), ("20230607+deb12u9", old)):
        path = f"/debian/pool/main/d/dinb/netboot_{version}_all.deb"
        server.files[path] = data
        index += (f"Package: debian-installer-12-netboot-amd64\nVersion: {version}\n"
                  f"Filename: {path.removeprefix('/debian/')}\n"
                  f"SHA256: {hashlib.sha256(data).hexdigest()}\n\n")
    server.files["/debian/dists/bookworm/main/binary-amd64/Packages.xz"] = lzma.compress(index.encode())
    d = distro.load("debian-12")
    assert d.netboot is not None
    images = f"{server.url}/debian/dists/bookworm/main/installer-amd64/current/images"
    d = dataclasses.replace(d, netboot=dataclasses.replace(
        d.netboot, kernel_url=f"{images}/netboot/debian-installer/amd64/linux",
        initrd_url=f"{images}/netboot/debian-installer/amd64/initrd.gz",
        checksum_url=f"{images}/SHA256SUMS",
        packages_url=f"{server.url}/debian/dists/bookworm/main/binary-amd64/Packages.xz"))
    settings = type("S", (), {"iso_cache": str(tmp_path / "cache")})()
    lines: list[str] = []
    kernel, initrd, origin = isocache.netboot_files(d, settings, log=lines.append)
    assert kernel.read_bytes() == b"kernel 20230607+deb12u15"  # the newer version
    assert initrd.read_bytes() == b"initrd 20230607+deb12u15"
    assert origin.startswith("debian-installer-12-netboot-amd64 20230607+deb12u15")
    assert any("taking the installer from the debian-installer-12-netboot-amd64 package" in ln
               for ln in lines)
    assert not list(kernel.parent.glob("*.deb")) and not list(kernel.parent.glob("*.part"))
    # Later runs verify the extracted files like any cached download, with no fetch.
    fetched = len(server.requests)
    assert isocache.netboot_files(d, settings, log=quiet)[:2] == (kernel, initrd)
    assert len(server.requests) == fetched
    # A .deb whose SHA-256 differs from the index's is refused.
    for f in kernel.parent.iterdir():
        f.unlink()
    server.files["/debian/pool/main/d/dinb/netboot_20230607+deb12u15_all.deb"] = old
    with pytest.raises(GmiError, match="SHA-256"):
        isocache.netboot_files(d, settings, log=quiet)
    assert not kernel.exists()
