"""Static validation of GMI archives: a good one passes every step; hostile and broken
ones are refused with the right one-line message, the archive's bytes unchanged and
nothing written outside the scratch folder."""

from __future__ import annotations

import errno
import hashlib
import shutil
import stat
import struct
import subprocess
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.archive import reader as ga
from harness.archive import vhdx, writer
from harness.archive.errors import ArchiveError, ArchiveSpaceError, VhdxError
from harness.distro import VmgenieNames
from harness.errors import DiskSpaceError
from harness.host.tools import sha256_file

NAMES = VmgenieNames("Debian", "12")
MiB = 1024 * 1024
needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None,
                                    reason="qemu-img not installed (apt-get install -y qemu-utils)")


# --- fixtures and helpers ------------------------------------------------------------

@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, small dynamic VHDX (1 GiB virtual, a few MiB on disk)."""
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed (apt-get install -y qemu-utils)")
    p = tmp_path_factory.mktemp("disk") / "disk.vhdx"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "subformat=dynamic", str(p), "1G"],
                   check=True, capture_output=True)
    return p


def make_manifest(checksum: str, names: VmgenieNames = NAMES, **extra: Any) -> dict[str, Any]:
    extra.setdefault("disk_only", True)
    return writer.manifest(names, checksum=checksum, description="test image", maintainer="m",
                              maintainer_email="m@example.org", source_url="https://example.org",
                              created="2025-01-02T03:04:05Z", extra=extra)


@pytest.fixture
def good(tmp_path: Path, disk: Path) -> Path:
    """A good archive written by the harness's own writer.write_archive."""
    m = make_manifest(sha256_file(disk))
    return writer.write_archive(tmp_path / "out", NAMES, disk, m, "# readme\n", {"k": "v"},
                                   force=False)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    s = tmp_path / "scratch"
    s.mkdir()
    return s


def entries_of(archive: Path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(archive) as zf:
        return [(i, zf.read(i)) for i in zf.infolist()]


def write_zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names; some tests want them
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for info, data in entries:
                zf.writestr(info, data)
    return path


def variant(good: Path, tmp_path: Path, change: Callable[[dict[str, bytes]], object],
            name: str = "GMI-Debian-12.zip") -> Path:
    """A copy of the good archive's entries, changed by ``change`` (name -> bytes, ordered)."""
    files = {i.filename: data for i, data in entries_of(good)}
    change(files)
    return write_zip(tmp_path / "hostile" / name, list(files.items()))


def manifest_text(files: dict[str, bytes]) -> dict[str, Any]:
    return yaml.safe_load(files["GMI-Debian-12.yml"])


def set_manifest(files: dict[str, bytes], data: dict[str, Any]) -> None:
    files["GMI-Debian-12.yml"] = writer.dump_yaml(data).encode()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` but ``skip``, with size and mtime."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p == skip or skip in p.parents:
            continue
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def guard(tmp_path: Path, scratch: Path) -> Iterator[Callable[[Path, str], ArchiveError]]:
    """``guard(archive, match)``: check_archive refuses it; nothing changed or leaked."""

    def refuse(archive: Path, match: str, **kwargs: Any) -> ArchiveError:
        before_sha, before_tree = sha256(archive), tree(tmp_path, scratch)
        with pytest.raises(ArchiveError, match=match) as e:
            ga.check_archive(archive, scratch, **kwargs)
        assert "\n" not in str(e.value)
        assert sha256(archive) == before_sha, "the archive was modified"
        assert tree(tmp_path, scratch) == before_tree, "something was written outside scratch"
        assert list(scratch.iterdir()) == [], "a partial or rejected disk was left in scratch"
        return e.value

    yield refuse


# --- the good archive ----------------------------------------------------------------

def test_good_archive_passes_every_step(good: Path, scratch: Path, tmp_path: Path):
    before_sha, before_tree = sha256(good), tree(tmp_path, scratch)
    names = ga.parse_name(good)
    assert names == NAMES
    with ga.open_archive(good) as zf:
        m = ga.read_manifest(zf, names)
        lay = ga.layout(zf, names, m)
        assert lay == ga.Layout(manifest_entry="GMI-Debian-12.yml", readme_entry="GMI-Debian-12.md",
                                vhdx_entry="Virtual Hard Disks/GMI Debian 12.vhdx", vmcx_entry=None,
                                disk_only=True, snapshots_dir=True)
        out = ga.extract_vhdx(zf, names, scratch)
    assert out == scratch / "GMI Debian 12.vhdx"
    assert sha256_file(out) == m["checksum_sha256"]
    assert vhdx.inspect(out).virtual_size == 1024 * MiB
    assert sha256(good) == before_sha
    assert tree(tmp_path, scratch) == before_tree


def test_check_archive_reports_and_cleans_scratch(good: Path, scratch: Path):
    report = ga.check_archive(good, scratch)
    assert report.names == NAMES and report.layout.disk_only
    assert report.disk.virtual_size == 1024 * MiB and not report.disk.fixed
    assert list(scratch.iterdir()) == []


def test_archive_is_opened_read_only(good: Path, monkeypatch: pytest.MonkeyPatch):
    modes = []
    real = zipfile.ZipFile.__init__

    def spy(self: zipfile.ZipFile, file: Any, mode: str = "r", *a: Any, **k: Any) -> None:
        modes.append(mode)
        real(self, file, mode, *a, **k)  # type: ignore[call-overload]

    monkeypatch.setattr(zipfile.ZipFile, "__init__", spy)
    ga.open_archive(good).close()
    assert modes == ["r"]


def test_hyperv_style_archive_with_one_vmcx(good: Path, tmp_path: Path, scratch: Path):
    def change(files: dict[str, bytes]) -> None:
        m = manifest_text(files)
        m["disk_only"] = False
        set_manifest(files, m)
        files["Virtual Machines/1A2B3C4D-0000-0000-0000-000000000000.vmcx"] = b"\x00vmcx"

    report = ga.check_archive(variant(good, tmp_path, change), scratch)
    assert report.layout.vmcx_entry == "Virtual Machines/1A2B3C4D-0000-0000-0000-000000000000.vmcx"
    assert not report.layout.disk_only


def test_vhdx_is_exempt_from_the_ratio_limit(good: Path, scratch: Path, tmp_path: Path):
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo(NAMES.vhdx_entry)
        assert info.file_size / info.compress_size > 50  # sparse: mostly zeros
    ga.check_archive(good, scratch, limits=ga.Limits(max_ratio=50))

    def change(files: dict[str, bytes]) -> None:
        files["Virtual Hard Disks/other.bin"] = files[NAMES.vhdx_entry]

    with pytest.raises(ArchiveError, match=r"'Virtual Hard Disks/other.bin' expands \d+:1 \(limit 50:1\)"):
        ga.check_archive(variant(good, tmp_path, change), scratch, limits=ga.Limits(max_ratio=50))


# --- names ---------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "os_", "ver"), [
    ("GMI-Debian-12.zip", "Debian", "12"),
    ("GMI-Ubuntu-24.04.zip", "Ubuntu", "24.04"),
    ("GMI-OpenSUSE-16.Beta.zip", "OpenSUSE", "16.Beta"),
    ("GMI-OpenSUSE-Tumbleweed.zip", "OpenSUSE", "Tumbleweed"),
    ("GMI-Rocky-9.zip", "Rocky", "9"),
    ("/srv/gmi/GMI-Fedora-42.zip", "Fedora", "42"),
    ("C:\\vmgenie\\var\\gmi\\GMI-Debian-13.zip", "Debian", "13"),
])
def test_parse_name(name: str, os_: str, ver: str):
    names = ga.parse_name(name)
    assert (names.os, names.version) == (os_, ver)
    assert names.archive == name.replace("\\", "/").rsplit("/", 1)[-1]


@pytest.mark.parametrize(("name", "os_", "ver"), [
    ("GMI-Rocky-9-2.zip", "Rocky-9", "2"),          # split at the LAST hyphen
    ("GMI-OpenSUSE-16.0-beta.zip", "OpenSUSE-16.0", "beta"),
    ("GMI-Debian-12-.zip", "Debian", "12-"),        # ... that leaves a non-empty version
    ("GMI-A-B-C-D.zip", "A-B-C", "D"),
])
def test_vmgenie_pattern_is_greedy_like_dotnet(name: str, os_: str, ver: str):
    m = ga.NAME_PATTERN.match(name)
    assert m is not None and (m.group("os"), m.group("ver")) == (os_, ver)


def test_hyphen_in_os_is_refused_with_the_split_explained():
    with pytest.raises(ArchiveError, match=r"splits as os 'OpenSUSE-16.0', version 'beta'"):
        ga.parse_name("GMI-OpenSUSE-16.0-beta.zip")


@pytest.mark.parametrize(("name", "match"), [
    ("gmi-debian-12.zip", "does not match"),        # vmgenie's regex is case-sensitive
    ("GMI-Debian.zip", "does not match"),
    ("GMI-Debian-12.ZIP", "does not match"),
    ("GMI-Debian-12.zip.part", "does not match"),
    ("GMI--12.zip", "does not match"),
    ("GMI-Debian-12.zip\n", "Windows refuses"),     # .NET's $ would accept the newline
    ("GMI-Debian-1:2.zip", "Windows refuses"),
    ("GMI-Debian-12 LTS.zip", "whitespace"),
])
def test_bad_names(name: str, match: str):
    with pytest.raises(ArchiveError, match=match):
        ga.parse_name(name)


# --- broken and hostile zips ---------------------------------------------------------

def test_truncated_zip(good: Path, tmp_path: Path, guard: Any):
    cut = tmp_path / "hostile" / "GMI-Debian-12.zip"
    cut.parent.mkdir()
    data = good.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    guard(cut, r"GMI-Debian-12.zip is not a readable zip \(truncated or not a zip")


def test_not_a_zip(tmp_path: Path, guard: Any):
    p = tmp_path / "GMI-Debian-12.zip"
    p.write_text("just text\n")
    guard(p, "is not a readable zip")


def test_missing_archive(tmp_path: Path, scratch: Path):
    with pytest.raises(ArchiveError, match="does not exist"):
        ga.check_archive(tmp_path / "GMI-Debian-12.zip", scratch)


def test_zip_bomb_refused_by_ratio_without_decompressing(good: Path, tmp_path: Path, guard: Any,
                                                         monkeypatch: pytest.MonkeyPatch):
    bomb = tmp_path / "hostile" / "GMI-Debian-12.zip"
    bomb.parent.mkdir()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for info, data in entries_of(good):
            zf.writestr(info, data)
        with zf.open("bomb.bin", "w", force_zip64=True) as f:
            zero = bytes(MiB)
            for _ in range(200):
                f.write(zero)
    with zipfile.ZipFile(bomb) as zf:
        info = zf.getinfo("bomb.bin")
        assert info.file_size == 200 * MiB and info.compress_size < 300 * 1024

    def no_decompression(*a: Any, **k: Any) -> Any:
        raise AssertionError("an entry was opened for reading")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_decompression)
    guard(bomb, r"'bomb.bin' expands \d+:1 \(limit 1000:1\): a zip bomb")


def test_total_size_limit(good: Path, guard: Any):
    guard(good, r"archive expands to \d+ bytes \(limit 1048576\)", limits=ga.Limits(max_total_size=MiB))


def test_entry_count_limit(good: Path, guard: Any):
    guard(good, r"archive has 6 entries \(limit 3\)", limits=ga.Limits(max_entries=3))


def test_oversized_readme(good: Path, tmp_path: Path, guard: Any):
    import random
    text = "".join(random.Random(0).choices("abcdefghij \n", k=2 * MiB)).encode()
    guard(variant(good, tmp_path, lambda f: f.__setitem__("GMI-Debian-12.md", text)),
          r"'GMI-Debian-12.md' is 2097152 bytes; a manifest or README is at most 1048576")


@pytest.mark.parametrize(("entry", "match"), [
    ("../evil", r"unsafe archive entry '../evil': it has a '..' component"),
    ("Snapshots/../../evil", "has a '..' component"),
    ("/etc/x", r"unsafe archive entry '/etc/x': it is an absolute path"),
    ("\\windows\\evil", "uses a backslash"),
    ("..\\evil", "uses a backslash"),
    ("C:/evil", "starts with a drive letter"),
    ("c:evil", "starts with a drive letter"),
    ("GMI-Debian-12.yml:stream", "character Windows refuses"),
])
def test_unsafe_entry_names(good: Path, tmp_path: Path, guard: Any, entry: str, match: str):
    archive = variant(good, tmp_path, lambda f: f.__setitem__(entry, b"pwned"))
    with zipfile.ZipFile(archive) as zf:
        assert entry in zf.namelist()  # zipfile kept the hostile name as written
    guard(archive, match)
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()


def test_symlink_entry(good: Path, tmp_path: Path, guard: Any):
    def change(files: dict[str, bytes]) -> None:
        files["link"] = b"/etc/passwd"

    archive = variant(good, tmp_path, change)
    entries = entries_of(archive)
    link = zipfile.ZipInfo("link")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    write_zip(archive, [(i, d) if i.filename != "link" else (link, d) for i, d in entries])
    guard(archive, r"archive entry 'link' is a symbolic link")


def test_duplicate_names(good: Path, tmp_path: Path, guard: Any):
    entries: list[tuple[zipfile.ZipInfo | str, bytes]] = list(entries_of(good))
    entries.append(("GMI-Debian-12.md", b"second readme"))
    guard(write_zip(tmp_path / "hostile" / "GMI-Debian-12.zip", entries),
          r"archive holds 'GMI-Debian-12.md' twice")


def test_names_differing_only_in_case_clash_on_windows(good: Path, tmp_path: Path, guard: Any):
    guard(variant(good, tmp_path, lambda f: f.__setitem__("gmi-debian-12.md", b"x")),
          r"archive holds 'gmi-debian-12.md' and as 'GMI-Debian-12.md'")


def test_compression_method_dotnet_cannot_read(good: Path, tmp_path: Path, guard: Any):
    entries: list[tuple[zipfile.ZipInfo | str, bytes]] = list(entries_of(good))
    info = zipfile.ZipInfo("extra.txt")
    info.compress_type = zipfile.ZIP_BZIP2
    entries.append((info, b"hello" * 100))
    guard(write_zip(tmp_path / "hostile" / "GMI-Debian-12.zip", entries),
          r"'extra.txt' uses compression method 12, .NET's unzip reads only stored and deflate")


def test_overlapping_entries(tmp_path: Path, guard: Any):
    p = tmp_path / "hostile" / "GMI-Debian-12.zip"
    p.parent.mkdir()
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.bin", b"A" * 1000)
        zf.writestr("b.bin", b"B" * 1000)
    data = bytearray(p.read_bytes())
    second = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 4)
    struct.pack_into("<I", data, second + 42, 0)  # b.bin's local header -> a.bin's
    p.write_bytes(bytes(data))
    guard(p, r"archive entries 'a.bin' and 'b.bin' overlap")


def test_corrupt_disk_data_inside_the_zip(good: Path, tmp_path: Path, guard: Any):
    bad = tmp_path / "hostile" / "GMI-Debian-12.zip"
    bad.parent.mkdir()
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo(NAMES.vhdx_entry)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for k in range(64):
        data[start + info.compress_size // 2 + k] ^= 0x55
    bad.write_bytes(bytes(data))
    guard(bad, r"Virtual Hard Disks/GMI Debian 12.vhdx is corrupt inside the archive")


# --- the manifest --------------------------------------------------------------------

def test_manifest_not_yaml(good: Path, tmp_path: Path, guard: Any):
    archive = variant(good, tmp_path, lambda f: f.__setitem__("GMI-Debian-12.yml", b"os: [Debian\n"))
    guard(archive, r"manifest GMI-Debian-12.yml is not valid YAML at line \d+")


def test_manifest_not_a_mapping(good: Path, tmp_path: Path, guard: Any):
    archive = variant(good, tmp_path, lambda f: f.__setitem__("GMI-Debian-12.yml", b"- a\n- b\n"))
    guard(archive, r"manifest GMI-Debian-12.yml is not a mapping of keys \(it is list\)")


def test_manifest_not_utf8(good: Path, tmp_path: Path, guard: Any):
    archive = variant(good, tmp_path, lambda f: f.__setitem__("GMI-Debian-12.yml", b"os: \xff\xfe\n"))
    guard(archive, r"GMI-Debian-12.yml is not UTF-8 text")


def test_manifest_missing(good: Path, tmp_path: Path, guard: Any):
    archive = variant(good, tmp_path, lambda f: f.pop("GMI-Debian-12.yml"))
    guard(archive, r"manifest GMI-Debian-12.yml is missing at the archive's root")


def test_top_level_folder_wrapping_everything(good: Path, tmp_path: Path, guard: Any):
    entries = [(f"GMI-Debian-12/{i.filename}", d) for i, d in entries_of(good)]
    archive = write_zip(tmp_path / "hostile" / "GMI-Debian-12.zip", list(entries))
    guard(archive, r"the zip wraps everything in the folder 'GMI-Debian-12/'")


def test_duplicate_manifest_key(good: Path, tmp_path: Path, guard: Any):
    def change(files: dict[str, bytes]) -> None:
        files["GMI-Debian-12.yml"] += b"os: Ubuntu\n"

    guard(variant(good, tmp_path, change), r"not valid YAML at line \d+: duplicate key 'os'")


@pytest.mark.parametrize(("drop", "match"), [
    (("checksum_sha256",), r"lacks key\(s\) checksum_sha256"),
    (("maintainer", "updated"), r"lacks key\(s\) updated, maintainer"),
])
def test_manifest_missing_keys(good: Path, tmp_path: Path, guard: Any, drop: tuple[str, ...], match: str):
    def change(files: dict[str, bytes]) -> None:
        m = manifest_text(files)
        for key in drop:
            m.pop(key)
        set_manifest(files, m)

    guard(variant(good, tmp_path, change), match)


@pytest.mark.parametrize(("key", "value", "match"), [
    ("version", 12, r"key 'version' must be a quoted string, got int"),
    ("gmi_version", 1.0, r"key 'gmi_version' must be a quoted string, got float"),
    ("gmi_version", "2.0", r"key 'gmi_version' is '2.0', expected '1.0'"),
    ("description", None, r"key 'description' must be a quoted string, got nothing"),
    ("created", "2025-01-02 03:04:05", r"key 'created' is .* expected UTC"),
    ("updated", "2025-01-02T03:04:05+00:00", r"key 'updated' is .* expected UTC"),
    ("hyperv_generation", 1, r"key 'hyperv_generation' is 1, expected the integer 2"),
    ("hyperv_generation", "2", r"key 'hyperv_generation' is '2'"),
    ("hyperv_generation", True, r"key 'hyperv_generation' is True"),
    ("checksum_sha256", "AB" * 32, r"key 'checksum_sha256' .* 64 lowercase hex"),
    ("checksum_sha256", "ab" * 31, r"key 'checksum_sha256' .* 64 lowercase hex"),
    ("os", "Ubuntu", r"key 'os' is 'Ubuntu', expected 'Debian' as in the archive"),
    ("version", "13", r"key 'version' is '13', expected '12'"),
    ("vm_name", "GMI-Debian-12", r"key 'vm_name' is 'GMI-Debian-12', expected 'GMI Debian 12'"),
    ("disk_only", "yes", r"key 'disk_only' is 'yes', expected true or false"),
])
def test_manifest_types_and_values(good: Path, tmp_path: Path, guard: Any, key: str, value: Any, match: str):
    def change(files: dict[str, bytes]) -> None:
        m = manifest_text(files)
        m[key] = value
        set_manifest(files, m)

    guard(variant(good, tmp_path, change), match)


def test_unquoted_timestamp_is_a_yaml_timestamp_not_a_string(good: Path, tmp_path: Path, guard: Any):
    def change(files: dict[str, bytes]) -> None:
        files["GMI-Debian-12.yml"] = files["GMI-Debian-12.yml"].replace(
            b"created: '2025-01-02T03:04:05Z'", b"created: 2025-01-02T03:04:05Z")

    guard(variant(good, tmp_path, change), r"key 'created' must be a quoted string, got datetime")


def test_strict_keys_flags_keys_vmgenie_does_not_know(good: Path, scratch: Path):
    with pytest.raises(ArchiveError, match=r"does not know: gmi_harness_version|does not know: disk_only"):
        ga.check_archive(good, scratch, strict_keys=True)


# --- the layout ----------------------------------------------------------------------

def test_two_vmcx_files(good: Path, tmp_path: Path, guard: Any):
    def change(files: dict[str, bytes]) -> None:
        files["Virtual Machines/A.vmcx"] = b"a"
        files["Virtual Machines/B.VMCX"] = b"b"

    guard(variant(good, tmp_path, change), r"holds 2 .vmcx files under 'Virtual Machines/'")


def test_no_vmcx_without_disk_only(good: Path, tmp_path: Path, guard: Any):
    def change(files: dict[str, bytes]) -> None:
        m = manifest_text(files)
        m.pop("disk_only")
        set_manifest(files, m)

    guard(variant(good, tmp_path, change), r"no .vmcx under 'Virtual Machines/' and the manifest does not")


def test_vmcx_contradicts_disk_only(good: Path, tmp_path: Path, guard: Any):
    guard(variant(good, tmp_path, lambda f: f.__setitem__("Virtual Machines/A.vmcx", b"a")),
          r"says disk_only: true but the archive holds Virtual Machines/A.vmcx")


def test_disk_missing_or_misnamed(good: Path, tmp_path: Path, guard: Any):
    def change(files: dict[str, bytes]) -> None:
        files["Virtual Hard Disks/debian.vhdx"] = files.pop(NAMES.vhdx_entry)

    guard(variant(good, tmp_path, change),
          r"the disk 'Virtual Hard Disks/GMI Debian 12.vhdx' is missing \(found: Virtual Hard Disks/debian")


def test_checkpoint_disk(good: Path, tmp_path: Path, guard: Any):
    guard(variant(good, tmp_path, lambda f: f.__setitem__("Virtual Hard Disks/GMI Debian 12_A1.avhdx", b"x")),
          r"checkpoint disk 'Virtual Hard Disks/GMI Debian 12_A1.avhdx'")


# --- the disk ------------------------------------------------------------------------

def test_checksum_mismatch(good: Path, tmp_path: Path, guard: Any):
    wrong = "0123456789ab" + "c" * 52

    def change(files: dict[str, bytes]) -> None:
        m = manifest_text(files)
        m["checksum_sha256"] = wrong
        set_manifest(files, m)

    archive = variant(good, tmp_path, change)
    with zipfile.ZipFile(archive) as zf:
        actual = hashlib.sha256(zf.read(NAMES.vhdx_entry)).hexdigest()
    err = guard(archive, r"the disk's SHA-256 [0-9a-f]{12}\.\.\. differs from the manifest's "
                         r"checksum_sha256 0123456789ab\.\.\.")
    assert actual[:12] in str(err)


def test_disk_that_is_not_a_vhdx(good: Path, tmp_path: Path, guard: Any):
    fake = b"this is not a disk image\n" * 100

    def change(files: dict[str, bytes]) -> None:
        files[NAMES.vhdx_entry] = fake
        m = manifest_text(files)
        m["checksum_sha256"] = hashlib.sha256(fake).hexdigest()
        set_manifest(files, m)

    err = guard(variant(good, tmp_path, change), r"not a VHDX: signature is b'this is '")
    assert isinstance(err, VhdxError)


def test_fixed_vhdx_is_refused(tmp_path: Path, guard: Any):
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed")
    fixed = tmp_path / "src" / "fixed.vhdx"
    fixed.parent.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "subformat=fixed", str(fixed), "8M"],
                   check=True, capture_output=True)
    archive = writer.write_archive(tmp_path / "out", NAMES, fixed,
                                      make_manifest(sha256_file(fixed)), "", {}, force=False)
    guard(archive, r"the VHDX is a fixed-size disk")


def test_full_disk_before_extracting(good: Path, guard: Any, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ga.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**12, 10**12, 0))
    err = guard(good, r"not enough free space in .*scratch to extract the disk: need .* have 0.00 GiB")
    assert isinstance(err, ArchiveSpaceError) and isinstance(err, DiskSpaceError)


def test_disk_fills_up_mid_write(good: Path, guard: Any, monkeypatch: pytest.MonkeyPatch):
    calls = []

    def write(dst: Any, data: bytes) -> None:
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        dst.write(data)

    monkeypatch.setattr(ga, "_write_chunk", write)
    err = guard(good, r"the disk filled up while extracting Virtual Hard Disks/GMI Debian 12.vhdx .*"
                      r"removed the partial file")
    assert isinstance(err, DiskSpaceError) and len(calls) == 2


def test_other_write_error_mid_write(good: Path, guard: Any, monkeypatch: pytest.MonkeyPatch):
    def write(dst: Any, data: bytes) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(ga, "_write_chunk", write)
    guard(good, r"cannot extract Virtual Hard Disks/GMI Debian 12.vhdx to .*: Input/output error")


def test_existing_file_in_scratch_is_never_overwritten(good: Path, scratch: Path):
    mine = scratch / "GMI Debian 12.vhdx"
    mine.write_bytes(b"keep me")
    with ga.open_archive(good) as zf, pytest.raises(ArchiveError, match="already exists"):
        ga.extract_vhdx(zf, NAMES, scratch)
    assert mine.read_bytes() == b"keep me"


def test_file_appearing_during_extraction_is_not_removed(good: Path, scratch: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    real_target = ga._target

    def racing_target(dest: Path, names: VmgenieNames) -> Path:
        target = real_target(dest, names)
        target.write_bytes(b"someone else's")  # created between the check and the open
        return target

    monkeypatch.setattr(ga, "_target", racing_target)
    with ga.open_archive(good) as zf, pytest.raises(ArchiveError, match="already exists"):
        ga.extract_vhdx(zf, NAMES, scratch)
    assert (scratch / "GMI Debian 12.vhdx").read_bytes() == b"someone else's"


def test_scratch_must_exist(good: Path, tmp_path: Path):
    with ga.open_archive(good) as zf, pytest.raises(ArchiveError, match=r"scratch folder .* does not exist"):
        ga.extract_vhdx(zf, NAMES, tmp_path / "nope")
    assert not (tmp_path / "nope").exists()
