"""ISO names resolved from upstream's signed checksum listings, against a local HTTP
server on 127.0.0.1 that serves each distro's real folders (their URL paths under the
server) with listings shaped like upstream's: Debian's and Ubuntu's SHA256SUMS with a
detached signature, Fedora's clearsigned CHECKSUM (named with its compose from Fedora 44
on, found in the folder's index), Rocky's CHECKSUM (versioned and -latest names),
openSUSE's one-entry NAME.sha256 with .asc and Leap 16's per-build NAME.sha512 (SHA-512
only) with NAME.sha512.asc. Releases are current,
superseded (a point release moved to the archive) or end-of-life (the folder gone).
The signing keys are made for the run (ed25519): a good key, a wrong key, and
listings tampered after signing."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpg_keys import SigningKey, make_key
from http_server import Server, serving

from harness import distro
from harness.errors import GmiError
from harness.media import isocache, isolisting
from harness.media.signatures import SignatureError
from harness.settings import resolve as settings_of

ALL = distro.known_distros()
# (a superseded point release, the current one) as each upstream names them
VERSIONS = {"debian-12": ("12.12.0", "12.13.0"), "debian-13": ("13.2.0", "13.4.0"),
            "ubuntu-24.04": ("24.04.3", "24.04.5"), "ubuntu-25.04": ("25.04", "25.04"),
            "ubuntu-26.04": ("26.04", "26.04.1"),
            "fedora-42": ("42-1.1", "42-1.1"), "fedora-44": ("44-1.7", "44-1.7"),
            "fedora-45": ("45-1.1", "45-1.2"),  # (45's compose number is a stand-in)
            "rocky-9": ("9.5", "9.6"), "rocky-10": ("10.0", "10.1"),
            "opensuse-leap-15.6": ("710.2", "710.3"), "opensuse-leap-16.0": ("178.9", "178.27"),
            "opensuse-tumbleweed": ("20250513", "20250520")}


@pytest.fixture(scope="module")
def keys() -> Iterator[dict[str, SigningKey]]:
    made = {"good": make_key("good"), "wrong": make_key("wrong")}
    yield made
    for k in made.values():
        k.close()


@pytest.fixture
def server() -> Iterator[Server]:
    with serving() as s:
        yield s


def quiet(_: str) -> None:
    pass


def local(server: Server, url: str) -> str:
    """An upstream URL, served by the local server under the same host and path."""
    return url.replace("https://", f"{server.url}/", 1) if url else url


def path_of(server: Server, url: str) -> str:
    return local(server, url).removeprefix(server.url)


def served(name: str, server: Server, key: SigningKey, tmp: Path, *, keyring_file: bool = False
           ) -> distro.Distro:
    """The catalogue's distro with its folders on the local server and the test key
    pinned, taken from a keyring file (as a host keyring package) or its key URL."""
    d = distro.load(name)
    assert d.iso is not None
    spec = d.iso
    ring = tmp / "host-keyring.gpg"
    if keyring_file:
        ring.write_bytes(key.public(armor=False))
    key_url = local(server, "https://keys.example.org/signing-key.asc")
    server.files[path_of(server, key_url)] = key.public()
    iso = dataclasses.replace(
        spec, folder=local(server, spec.folder), archive=local(server, spec.archive),
        point_archive=local(server, spec.point_archive), key_url=key_url,
        fingerprints=(key.fingerprint,), keyrings=(str(ring),) if keyring_file else ("/nonexistent/k.gpg",))
    return dataclasses.replace(d, iso=iso)


def iso_name(d: distro.Distro, version: str) -> str:
    assert d.iso is not None
    return d.iso.pattern.replace("{version}", version)


def digest(d: distro.Distro, data: bytes) -> str:
    assert d.iso is not None
    return (hashlib.sha512 if d.iso.checksums.endswith(".sha512") else hashlib.sha256)(data).hexdigest()


def listing(d: distro.Distro, files: dict[str, bytes]) -> bytes:
    """A checksum listing of ``files`` in the distro's own format, with neighbours that
    do not match its pattern (other flavours, moving aliases)."""
    assert d.iso is not None
    bsd = "CHECKSUM" in d.iso.checksums
    lines = []
    for name, data in files.items():
        sha = digest(d, data)
        others = [f"other-flavour-{name}", name.replace(".iso", ".iso.zsync")]
        if bsd:
            lines += [f"# {name}: {len(data)} bytes", f"SHA256 ({name}) = {sha}"]
            lines += [f"SHA256 ({o}) = {'1' * 64}" for o in others]
            if name.startswith("Rocky-"):  # the moving alias, same hash
                lines.append(f"SHA256 (Rocky-{d.iso.series}-latest-x86_64-minimal.iso) = {sha}")
        elif d.iso.checksums.endswith((".sha256", ".sha512")):  # openSUSE: one entry, the build's file
            lines = [f"{sha}  {name}"]
        else:
            star = "*" if "ubuntu" in name else " "
            lines += [f"{sha} {star}{name}"] + [f"{'2' * 64} {star}{o}" for o in others]
    return ("\n".join(lines) + "\n").encode()


def publish(server: Server, d: distro.Distro, folder: str, files: dict[str, bytes], key: SigningKey) -> str:
    """Put ``files`` and their signed listing into ``folder`` (a served URL): one listing,
    or, where the listing's name carries the version, one per version, linked from the
    folder's index page as a mirror serves it."""
    assert d.iso is not None
    base = folder.removeprefix(server.url).rstrip("/") + "/"
    per_version = "{version}" in d.iso.checksums
    regex = isolisting.pattern_regex(d.iso.pattern)
    groups: dict[str, dict[str, bytes]] = {}
    for name, data in files.items():
        m = regex.fullmatch(name)
        key_name = d.iso.checksums.replace("{version}", m["version"] if m else "") if per_version \
            else d.iso.checksums
        groups.setdefault(key_name, {})[name] = data
    for listing_name, group in groups.items():
        text = listing(d, group)
        if d.iso.signature == "inline":
            server.files[base + listing_name] = key.clearsign(text)
        else:
            server.files[base + listing_name] = text
            if d.iso.signature:
                signature = d.iso.signature.replace("{listing}", listing_name)
                server.files[base + signature] = key.detach_sign(text)
    for name, data in files.items():
        server.files[base + name] = data
    if per_version:
        links = sorted(p.removeprefix(base) for p in server.files if p.startswith(base) and p != base)
        server.files[base] = ("<html><body><pre>" + "".join(
            f'<a href="{n}">{n}</a>\n' for n in ["../", *links]) + "</pre></body></html>").encode()
    return base


def payload(name: str) -> bytes:
    return f"iso image {name}\n".encode() * 1000


# --- current releases: the newest matching file of the signed listing ------------------


@pytest.mark.parametrize("name", ALL)
def test_current_release_resolves_to_the_newest_listed_iso(name: str, server: Server, keys, tmp_path):
    d = served(name, server, keys["good"], tmp_path)
    old, new = VERSIONS[name]
    assert d.iso is not None
    files = {iso_name(d, v): payload(iso_name(d, v)) for v in dict.fromkeys((old, new))}
    if d.iso.checksums.endswith(".sha256"):
        files = {iso_name(d, new): payload(iso_name(d, new))}  # the alias names one build
    publish(server, d, d.iso.folder, files, keys["good"])
    settings = settings_of({"iso_cache": str(tmp_path / "cache")}, env={})
    record: dict[str, dict[str, str]] = {}
    path, sha = isocache.resolve(d, settings, log=quiet, record=record)
    want = iso_name(d, new)
    assert path.name == want and path.read_bytes() == payload(want)
    facts = record["install_iso"]
    assert facts["file"] == want and facts["sha256"] == sha == hashlib.sha256(payload(want)).hexdigest()
    if d.iso.checksums.endswith(".sha512"):  # verified by the SHA-512 listed; the SHA-256 computed
        assert facts["sha512"] == hashlib.sha512(payload(want)).hexdigest()
    assert facts["url"] == d.iso.folder.rstrip("/") + "/" + want and facts["version"] == new
    if d.iso.signature:
        assert facts["signature"].startswith("verified with gpgv") and keys["good"].fingerprint in facts[
            "signature"]
    else:
        assert facts["signature"].startswith("none published upstream (Rocky Linux 9")


def test_only_the_releases_own_versions_are_taken(server: Server, keys, tmp_path):
    """debian-12's folder (latest-oldstable) once forky is out lists trixie's ISOs: not
    bookworm's, so the archive (latest-oldoldstable) is read instead."""
    d = served("debian-12", server, keys["good"], tmp_path)
    assert d.iso is not None
    publish(server, d, d.iso.folder, {iso_name(d, "13.9.0"): b"trixie"}, keys["good"])
    publish(server, d, d.iso.archive, {iso_name(d, "12.14.0"): b"bookworm"}, keys["good"])
    lines: list[str] = []
    found = isocache.listed(d, settings_of({"iso_cache": str(tmp_path)}, env={}), log=lines.append)
    assert found.filename == "debian-12.14.0-amd64-netinst.iso" and found.url.startswith(d.iso.archive)
    assert any("using " + d.iso.archive in ln for ln in lines)


# --- superseded point releases and end-of-life releases --------------------------------


@pytest.mark.parametrize("name, pinned", [("ubuntu-24.04", "24.04.3"), ("debian-13", "13.2.0"),
                                          ("rocky-10", "10.0")])
def test_a_pinned_point_release_that_moved_is_found_in_its_archive(name, pinned, server, keys, tmp_path):
    """The issue's case: 24.04.3 left releases.ubuntu.com/24.04 (and its SHA256SUMS) when
    24.04.5 came; 13.2.0 left debian-cd/current. --iso-version finds them archived."""
    d = served(name, server, keys["good"], tmp_path)
    assert d.iso is not None
    current = iso_name(d, VERSIONS[name][1])
    publish(server, d, d.iso.folder, {current: payload(current)}, keys["good"])
    old = iso_name(d, pinned)
    publish(server, d, d.iso.point_archive.replace("{version}", pinned), {old: payload(old)}, keys["good"])
    settings = settings_of({"iso_cache": str(tmp_path / "c"), "iso_version": pinned}, env={})
    record: dict[str, dict[str, str]] = {}
    path, _ = isocache.resolve(d, settings, log=quiet, record=record)
    assert path.name == old and record["install_iso"]["version"] == pinned
    assert record["install_iso"]["url"].startswith(d.iso.point_archive.replace("{version}", pinned))
    # unpinned, the same build takes the current one
    assert isocache.listed(d, settings.replace(iso_version=""), log=quiet).filename == current


@pytest.mark.parametrize("name", ["fedora-42", "ubuntu-25.04", "opensuse-leap-15.6"])
def test_end_of_life_release_is_taken_from_the_archive(name: str, server: Server, keys, tmp_path):
    """The release folder is gone (404): the listing and the ISO come from the archive."""
    d = served(name, server, keys["good"], tmp_path)
    assert d.iso is not None
    want = iso_name(d, VERSIONS[name][1])
    publish(server, d, d.iso.archive, {want: payload(want)}, keys["good"])
    lines: list[str] = []
    record: dict[str, dict[str, str]] = {}
    path, _ = isocache.resolve(d, settings_of({"iso_cache": str(tmp_path / "c")}, env={}),
                               log=lines.append, record=record)
    assert path.name == want and record["install_iso"]["url"].startswith(d.iso.archive)
    assert any(f"{d.iso.folder} has no" in ln and d.iso.archive in ln for ln in lines)


def test_no_listing_names_it_is_one_line_naming_what_was_tried(server: Server, keys, tmp_path):
    d = served("ubuntu-24.04", server, keys["good"], tmp_path)
    assert d.iso is not None
    publish(server, d, d.iso.folder, {iso_name(d, "24.04.5"): b"x"}, keys["good"])
    settings = settings_of({"iso_cache": str(tmp_path), "iso_version": "24.04.1"}, env={})
    with pytest.raises(isolisting.ListingError) as exc:
        isocache.resolve(d, settings, log=quiet)
    message = str(exc.value)
    assert "\n" not in message and "no install ISO found for version 24.04.1" in message
    assert f"{d.iso.folder}SHA256SUMS (lists no ubuntu-{{version}}-live-server-amd64.iso of version " \
           "24.04.1)" in message
    assert "old-releases.ubuntu.com/releases/24.04.1/SHA256SUMS (Not Found)" in message
    assert message.endswith("pin another with --iso-version, or update the YAML's iso.folder / iso.archive")


# --- signatures ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ubuntu-24.04", "fedora-42", "opensuse-tumbleweed"])
def test_a_tampered_listing_is_refused_in_one_line(name: str, server: Server, keys, tmp_path):
    d = served(name, server, keys["good"], tmp_path)
    assert d.iso is not None
    want = iso_name(d, VERSIONS[name][1])
    base = publish(server, d, d.iso.folder, {want: payload(want)}, keys["good"])
    text = server.files[base + d.iso.checksums]
    forged = hashlib.sha256(b"evil").hexdigest()
    real = hashlib.sha256(payload(want)).hexdigest()
    server.files[base + d.iso.checksums] = text.replace(real.encode(), forged.encode())
    with pytest.raises(SignatureError) as exc:
        isocache.resolve(d, settings_of({"iso_cache": str(tmp_path / "c")}, env={}), log=quiet)
    message = str(exc.value)
    assert "\n" not in message and "BAD signature by pinned key" in message and "not used" in message
    assert not list((tmp_path / "c").glob("*.iso*"))  # nothing downloaded


def test_a_listing_signed_by_another_key_is_refused(server: Server, keys, tmp_path):
    d = served("debian-13", server, keys["good"], tmp_path)
    assert d.iso is not None
    publish(server, d, d.iso.folder, {iso_name(d, "13.4.0"): b"x"}, keys["wrong"])
    with pytest.raises(SignatureError, match=rf"signed by key .*, not by the pinned key "
                                             rf"{keys['good'].fingerprint}"):
        isocache.listed(d, settings_of({"iso_cache": str(tmp_path)}, env={}), log=quiet)


def test_lines_outside_a_clearsigned_listing_are_ignored(server: Server, keys, tmp_path):
    """Fedora's CHECKSUM is clearsigned: an entry appended after the signature (by a
    mirror) is not covered by it and must never be picked."""
    d = served("fedora-42", server, keys["good"], tmp_path)
    assert d.iso is not None
    base = publish(server, d, d.iso.folder, {iso_name(d, "42-1.1"): b"real"}, keys["good"])
    server.files[base + d.iso.checksums] += (
        f"SHA256 (Fedora-Server-netinst-x86_64-42-1.9.iso) = {'e' * 64}\n".encode())
    found = isocache.listed(d, settings_of({"iso_cache": str(tmp_path)}, env={}), log=quiet)
    assert found.filename == "Fedora-Server-netinst-x86_64-42-1.1.iso"


def test_a_missing_signature_file_is_an_error(server: Server, keys, tmp_path):
    d = served("ubuntu-24.04", server, keys["good"], tmp_path)
    assert d.iso is not None
    base = publish(server, d, d.iso.folder, {iso_name(d, "24.04.5"): b"x"}, keys["good"])
    del server.files[base + "SHA256SUMS.gpg"]
    with pytest.raises(GmiError, match=r"cannot fetch .*/SHA256SUMS\.gpg: Not Found"):
        isocache.listed(d, settings_of({"iso_cache": str(tmp_path)}, env={}), log=quiet)


def test_signatures_off_is_recorded_as_not_checked(server: Server, keys, tmp_path):
    d = served("ubuntu-24.04", server, keys["good"], tmp_path)
    assert d.iso is not None
    publish(server, d, d.iso.folder, {iso_name(d, "24.04.5"): b"x"}, keys["wrong"])
    settings = settings_of({"iso_cache": str(tmp_path), "iso_signatures": "off"}, env={})
    assert isocache.listed(d, settings, log=quiet).signature == "not checked (--iso-signatures=off)"


def test_signature_checking_is_on_by_default():
    assert settings_of({}, env={}).iso_signatures == "verify"


# --- where the key comes from ----------------------------------------------------------


def test_key_from_a_host_keyring_package_before_the_key_url(server: Server, keys, tmp_path):
    d = served("debian-13", server, keys["good"], tmp_path, keyring_file=True)
    assert d.iso is not None
    publish(server, d, d.iso.folder, {iso_name(d, "13.4.0"): b"x"}, keys["good"])
    found = isocache.listed(d, settings_of({"iso_cache": str(tmp_path / "c")}, env={}), log=quiet)
    assert f"from keyring package file {tmp_path / 'host-keyring.gpg'}" in found.signature
    assert server.gets("/keys.example.org/signing-key.asc") == []  # the URL was not needed


def test_key_from_the_key_url_is_kept_only_when_its_fingerprint_is_pinned(server: Server, keys, tmp_path):
    d = served("debian-13", server, keys["good"], tmp_path)
    assert d.iso is not None
    publish(server, d, d.iso.folder, {iso_name(d, "13.4.0"): b"x"}, keys["good"])
    server.files["/keys.example.org/signing-key.asc"] = keys["wrong"].public()  # a swapped key
    settings = settings_of({"iso_cache": str(tmp_path / "c")}, env={})
    with pytest.raises(SignatureError) as exc:
        isocache.listed(d, settings, log=quiet)
    assert "\n" not in str(exc.value)
    assert f"no key with the pinned fingerprint {keys['good'].fingerprint} found" in str(exc.value)
    assert "signing-key.asc (none of the pinned keys in it)" in str(exc.value)
    assert "/nonexistent/k.gpg (not installed)" in str(exc.value)
    server.files["/keys.example.org/signing-key.asc"] = keys["good"].public()
    found = isocache.listed(d, settings, log=quiet)
    assert found.signature.endswith(f"key {keys['good'].fingerprint} from {d.iso.key_url}")
    isocache.listed(d, settings, log=quiet)  # the keyring is kept: fetched once
    assert len(server.gets("/keys.example.org/signing-key.asc")) == 2  # (once refused, once taken)


# --- listings named per version (Fedora's compose, Leap 16's build) and SHA-512 -------


def test_a_listing_named_per_version_is_read_from_the_folder_index(server: Server, keys, tmp_path):
    """Fedora 45's CHECKSUM carries its compose in its name: the newest listing of the
    release that the folder's index links is read (another release's is not), or the
    one --iso-version pins."""
    d = served("fedora-45", server, keys["good"], tmp_path)
    assert d.iso is not None
    files = {iso_name(d, v): payload(iso_name(d, v)) for v in ("45-1.1", "45-1.2", "44-1.7")}
    base = publish(server, d, d.iso.folder, files, keys["good"])
    assert b'href="Fedora-Server-45-1.2-x86_64-CHECKSUM"' in server.files[base]
    settings = settings_of({"iso_cache": str(tmp_path / "c")}, env={})
    found = isocache.listed(d, settings, log=quiet)
    assert found.filename == "Fedora-Server-netinst-x86_64-45-1.2.iso"
    assert found.listing.endswith("/Fedora-Server-45-1.2-x86_64-CHECKSUM")
    assert found.signature.startswith("verified with gpgv: inline")
    pinned = isocache.listed(d, settings.replace(iso_version="45-1.1"), log=quiet)
    assert pinned.listing.endswith("/Fedora-Server-45-1.1-x86_64-CHECKSUM")


def test_a_folder_index_without_the_listing_is_one_line_naming_the_folder(server: Server, keys, tmp_path):
    d = served("fedora-44", server, keys["good"], tmp_path)
    assert d.iso is not None
    base = d.iso.folder.removeprefix(server.url)
    server.files[base] = b'<a href="Fedora-Server-dvd-x86_64-44-1.7.iso">x</a>'
    with pytest.raises(isolisting.ListingError) as exc:
        isocache.listed(d, settings_of({"iso_cache": str(tmp_path)}, env={}), log=quiet)
    message = str(exc.value)
    assert "\n" not in message and not exc.value.unreachable
    assert f"{d.iso.folder} (its index links no Fedora-Server-{{version}}-x86_64-CHECKSUM)" in message


def test_leap_16_is_verified_by_the_sha512_its_signed_listing_gives(server: Server, keys, tmp_path):
    """Leap 16 publishes SHA-512 only: a download that does not match it is deleted; the
    listing's own signature ({listing}.asc) covers the digest."""
    d = served("opensuse-leap-16.0", server, keys["good"], tmp_path)
    assert d.iso is not None
    want = iso_name(d, "178.27")
    base = publish(server, d, d.iso.folder, {want: payload(want)}, keys["good"])
    assert base + want + ".sha512.asc" in server.files
    server.files[base + want] = b"a different image"
    cache = tmp_path / "c"
    with pytest.raises(isolisting.IsoError, match=r"SHA-512 .* but expected .*: deleted"):
        isocache.resolve(d, settings_of({"iso_cache": str(cache)}, env={}), log=quiet)
    assert not list(cache.glob("*.iso"))
    # a listing changed after signing is refused before anything is downloaded
    listing_path = base + want + ".sha512"
    server.files[listing_path] = server.files[listing_path].replace(
        hashlib.sha512(payload(want)).hexdigest().encode(), hashlib.sha512(b"evil").hexdigest().encode())
    server.files[base + want] = payload(want)
    with pytest.raises(SignatureError, match="BAD signature by pinned key"):
        isocache.resolve(d, settings_of({"iso_cache": str(cache)}, env={}), log=quiet)
