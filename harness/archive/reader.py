"""Static validation of a GMI archive, as vmgenie's import would see it.

Every function reads only: the archive is opened read-only and never modified, and
the one function that writes (:func:`extract_vhdx`) writes a single file inside the
folder it is given. Each step returns a structured result, so each can be a test:

    names = parse_name(path)
    with open_archive(path) as zf:
        manifest = read_manifest(zf, names)
        lay = layout(zf, names, manifest)
        disk = extract_vhdx(zf, names, scratch, manifest)

How vmgenie reads an archive (its source, ``Gmi.cs`` and ``CoordinatorService.ImportGmi``):
the file name gives os and version through ``^GMI-(?<os>.+)-(?<ver>.+)\\.zip$``; .NET's
``ZipFile.ExtractToDirectory`` unpacks it; ``GmiMetadata.Load`` reads
``GMI-<Os>-<Version>.yml``; the disk is ``Virtual Hard Disks/<vm_name>.vhdx`` with
``vm_name`` taken from the manifest; its SHA-256 must equal ``checksum_sha256``.

Size: one module on purpose: every rule vmgenie applies when it opens an archive
(name, zip safety, manifest, layout, disk, checksum) reads in one place, in that order.
"""

from __future__ import annotations

import errno
import hashlib
import re
import shutil
import stat
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import yaml

from harness import safeyaml
from harness.archive import vhdx
from harness.archive.errors import ArchiveError, ArchiveSpaceError
from harness.archive.format import MANIFEST_KEYS, RECORD_ENTRY, SNAP_DIR, VM_DIR
from harness.distro import VmgenieNames
from harness.names import VMGENIE_NAME

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

# vmgenie's pattern, verbatim (.NET named groups spelt the Python way). Both engines
# backtrack the same way: the greedy ``os`` group makes the split fall on the LAST
# hyphen that still leaves a non-empty version, so ``GMI-Rocky-9-2.zip`` gives
# os "Rocky-9", version "2".
NAME_PATTERN = re.compile(r"^GMI\-(?P<os>.+)\-(?P<ver>.+)\.zip$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# Characters Windows refuses in a file name (vmgenie unpacks on Windows), plus controls.
_WINDOWS_BAD = re.compile(r'[<>:"|?*\x00-\x1f]')
_DRIVE = re.compile(r"^[A-Za-z]:")
# The compression methods .NET's System.IO.Compression can read.
_DOTNET_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", 9: "deflate64"}
STRING_KEYS = ("gmi_version", "os", "version", "created", "updated", "vm_name", "maintainer",
               "maintainer_email", "source_url", "description", "checksum_sha256")
REBUILD = "build it again (gmi --distro=NAME) or download it again"


@dataclass(frozen=True)
class Limits:
    """Zip-bomb and sanity limits for :func:`open_archive`."""

    max_total_size: int = 1 * TiB      # sum of the entries' uncompressed sizes
    max_ratio: float = 1000.0          # uncompressed/compressed, for every entry but the VHDX
    max_text_size: int = 1 * MiB       # each root .yml/.md (manifest, README, build record)
    max_entries: int = 1000            # a Hyper-V export has about ten


@dataclass(frozen=True)
class Layout:
    """Where things are in a GMI archive that passed :func:`layout`."""

    manifest_entry: str
    readme_entry: str | None
    vhdx_entry: str
    vmcx_entry: str | None
    disk_only: bool
    snapshots_dir: bool


# --- the name ------------------------------------------------------------------------

def parse_name(path: Path | str) -> VmgenieNames:
    """os and version from the archive's file name, exactly as vmgenie's regex splits it.

    The base name is taken after the last ``/`` or ``\\`` (as .NET's ``Path.GetFileName``
    does on Windows). Beyond vmgenie's pattern, names it would accept but mis-handle are
    refused: an os with a hyphen (the greedy split moved part of the version into it),
    whitespace (vmgenie's index splits ``name`` on spaces), characters Windows refuses.
    """
    name = re.split(r"[\\/]", str(path))[-1]
    if _WINDOWS_BAD.search(name):
        raise ArchiveError(f"archive name {name!r} has a character Windows refuses in file names; "
                           "rename it GMI-<Os>-<Version>.zip")
    m = NAME_PATTERN.match(name)
    if m is None:
        raise ArchiveError(f"archive name {name!r} does not match vmgenie's GMI-<Os>-<Version>.zip; "
                           "rename it, e.g. GMI-Debian-12.zip")
    os_, ver = m.group("os"), m.group("ver")
    if "-" in os_:
        raise ArchiveError(f"archive name {name!r} splits as os {os_!r}, version {ver!r} (vmgenie "
                           "splits at the last hyphen): use a version without hyphens, e.g. 16.Beta")
    if any(c.isspace() for c in os_ + ver):
        raise ArchiveError(f"archive name {name!r} has whitespace in os or version; vmgenie's "
                           "index splits 'GMI <Os> <Version>' on spaces: remove it")
    if not (VMGENIE_NAME.fullmatch(os_) and VMGENIE_NAME.fullmatch(ver)):
        raise ArchiveError(f"archive name {name!r}: os and version may hold letters, digits, '.', "
                           "'_' and '-' only (they become VM names and parts of command lines); "
                           "rename it")
    return VmgenieNames(os_, ver)


# --- opening -------------------------------------------------------------------------

def _entry_problem(name: str) -> str | None:
    """Why an entry name is unsafe to extract, or None."""
    if not name:
        return "has an empty name"
    if name.startswith("/"):
        return "is an absolute path"
    if "\\" in name:
        return "uses a backslash (zip paths use '/'; on Windows it may escape the folder)"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    if ".." in name.split("/"):
        return "has a '..' component (path traversal)"
    if _WINDOWS_BAD.search(name):
        return "has a character Windows refuses in file names"
    return None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def is_vhdx_entry(name: str) -> bool:
    """An entry that is a disk image (exempt from the ratio limit: VHDX is sparse)."""
    return name.lower().endswith(".vhdx")


def _is_root_text(name: str) -> bool:
    return "/" not in name and name.lower().endswith((".yml", ".yaml", ".md"))


def _check_entry(info: zipfile.ZipInfo, limits: Limits) -> None:
    name = info.filename
    problem = _entry_problem(name)
    if problem:
        raise ArchiveError(f"unsafe archive entry {name!r}: it {problem}; refuse this archive and "
                           "rebuild it")
    if _is_symlink(info):
        raise ArchiveError(f"archive entry {name!r} is a symbolic link; a GMI holds only files "
                           "and folders: rebuild it")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"archive entry {name!r} is encrypted; vmgenie cannot read it: "
                           "rebuild it without a password")
    if info.compress_type not in _DOTNET_METHODS:
        raise ArchiveError(f"archive entry {name!r} uses compression method {info.compress_type}, "
                           ".NET's unzip reads only stored and deflate: rebuild it")
    ratio = info.file_size / max(info.compress_size, 1)
    if not is_vhdx_entry(name) and ratio > limits.max_ratio:
        raise ArchiveError(f"archive entry {name!r} expands {ratio:.0f}:1 (limit "
                           f"{limits.max_ratio:.0f}:1): a zip bomb or a corrupt archive; refuse it")
    if _is_root_text(name) and info.file_size > limits.max_text_size:
        raise ArchiveError(f"archive entry {name!r} is {info.file_size} bytes; a manifest or README "
                           f"is at most {limits.max_text_size}: refuse it")


def _check_names(infos: list[zipfile.ZipInfo]) -> None:
    seen: dict[str, str] = {}
    for info in infos:
        key = info.filename.rstrip("/").lower()  # Windows file names ignore case
        if key in seen:
            which = "twice" if seen[key] == info.filename else f"and as {seen[key]!r}"
            raise ArchiveError(f"archive holds {info.filename!r} {which} (duplicate names "
                               "clash on extraction): rebuild it")
        seen[key] = info.filename


def _name_length(info: zipfile.ZipInfo) -> int:
    """The entry name's length in bytes as stored (UTF-8 when flagged, else cp437)."""
    try:
        return len(info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437"))
    except UnicodeEncodeError:
        return len(info.orig_filename.encode("utf-8"))


def _check_overlap(infos: list[zipfile.ZipInfo], directory_start: int) -> None:
    """Entries' data must not overlap (the overlapping-entry zip bomb) nor the directory."""
    spans = sorted((i.header_offset, i.header_offset + 30 + _name_length(i) + i.compress_size, i.filename)
                   for i in infos)
    for (_, end, a), (start, _, b) in zip(spans, [*spans[1:], (directory_start, 0, "")], strict=True):
        if end > start:
            what = f"{a!r} and {b!r} overlap" if b else f"{a!r} runs into the central directory"
            raise ArchiveError(f"archive entries {what}: a zip bomb or a corrupt archive; refuse it")


def check_entries(zf: zipfile.ZipFile, limits: Limits) -> None:
    """Every entry safe to extract; sizes within ``limits``; no duplicates or overlaps."""
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise ArchiveError(f"archive has {len(infos)} entries (limit {limits.max_entries}); "
                           "a GMI has about ten: refuse it")
    for info in infos:
        _check_entry(info, limits)
    total = sum(i.file_size for i in infos)
    if total > limits.max_total_size:
        raise ArchiveError(f"archive expands to {total} bytes (limit {limits.max_total_size}): "
                           "a zip bomb or a corrupt archive; refuse it")
    _check_names(infos)
    _check_overlap(infos, getattr(zf, "start_dir", 0) or max(
        (i.header_offset + i.compress_size + 30 for i in infos), default=0))


def open_archive(path: Path, limits: Limits | None = None) -> zipfile.ZipFile:
    """Open the archive read-only after checking every entry; the caller closes it."""
    path = Path(path)
    limits = limits or Limits()
    if not path.is_file():
        raise ArchiveError(f"archive {path} does not exist or is not a file; check the path")
    try:
        zf = zipfile.ZipFile(path, "r")
    except (zipfile.BadZipFile, EOFError, ValueError) as e:
        raise ArchiveError(f"{path.name} is not a readable zip (truncated or not a zip: {e}); "
                           f"{REBUILD}") from e
    except OSError as e:
        raise ArchiveError(f"cannot read {path.name}: {e.strerror or e}; check the path") from e
    try:
        check_entries(zf, limits)
    except BaseException:
        zf.close()
        raise
    return zf


# --- the manifest --------------------------------------------------------------------

class _UniqueKeyLoader(safeyaml.Loader):
    """safeyaml's loader (plain data only) that also refuses duplicate keys (PyYAML keeps
    the last one silently)."""


def _mapping_no_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    keys = [loader.construct_object(k, deep=True) for k, _ in node.value]
    dupes = sorted({str(k) for k in keys if keys.count(k) > 1})
    if dupes:
        raise yaml.constructor.ConstructorError(None, None, f"duplicate key {dupes[0]!r}",
                                                node.start_mark)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_no_duplicates)


def _wrapping_folder(entries: list[str]) -> str | None:
    """The single top-level folder everything sits in, if the zip wraps its content."""
    tops = {e.split("/", 1)[0] for e in entries}
    if len(tops) == 1 and all("/" in e for e in entries):
        return tops.pop()
    return None


def read_text(zf: zipfile.ZipFile, entry: str, limit: int) -> str:
    """An entry's UTF-8 text, refusing anything larger than ``limit`` bytes."""
    info = zf.getinfo(entry)
    if info.file_size > limit:
        raise ArchiveError(f"{entry} is {info.file_size} bytes (limit {limit}); refuse the archive")
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as e:
        raise ArchiveError(f"{entry} cannot be read from the archive ({e}); {REBUILD}") from e
    if len(data) > limit:
        raise ArchiveError(f"{entry} expands beyond {limit} bytes; refuse the archive")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ArchiveError(f"{entry} is not UTF-8 text ({e.reason} at byte {e.start}); "
                           "rewrite it as UTF-8") from e


def _load_yaml(text: str, entry: str) -> dict[str, Any]:
    try:
        data = safeyaml.load(text, _UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ArchiveError(f"manifest {entry} is not valid YAML{where}: {problem}; fix the "
                           "manifest and rebuild the archive") from e
    if not isinstance(data, dict):
        raise ArchiveError(f"manifest {entry} is not a mapping of keys (it is "
                           f"{type(data).__name__}); rebuild the archive")
    return data


def _type_name(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def check_manifest(data: Mapping[str, Any], names: VmgenieNames, entry: str, *,
                   strict_keys: bool = False) -> None:
    """vmgenie's keys present, typed and consistent with the archive's name."""
    missing = [k for k in MANIFEST_KEYS if k not in data]
    if missing:
        raise ArchiveError(f"manifest {entry} lacks key(s) {', '.join(missing)}; vmgenie needs "
                           f"all of: {', '.join(MANIFEST_KEYS)}")
    for key in STRING_KEYS:
        if not isinstance(data[key], str):
            raise ArchiveError(f"manifest key '{key}' must be a quoted string, got "
                               f"{_type_name(data[key])} ({data[key]!r}); quote it in {entry}")
    _check_values(data, names, entry)
    extra = [k for k in data if k not in MANIFEST_KEYS]
    if strict_keys and extra:
        unknown = ", ".join(map(str, extra))
        raise ArchiveError(f"manifest {entry} has key(s) vmgenie does not know: {unknown}; "
                           "its YamlDotNet loader refuses unknown keys: move them to the build record")


def _check_values(data: Mapping[str, Any], names: VmgenieNames, entry: str) -> None:
    def bad(key: str, want: str) -> ArchiveError:
        return ArchiveError(f"manifest key '{key}' is {data[key]!r}, expected {want}; fix {entry}")

    if data["gmi_version"] != "1.0":
        raise bad("gmi_version", "'1.0'")
    for key in ("created", "updated"):
        if not TIMESTAMP.match(data[key]):
            raise bad(key, "UTC YYYY-MM-DDTHH:MM:SSZ")
    gen = data["hyperv_generation"]
    if isinstance(gen, bool) or gen != 2 or not isinstance(gen, int):
        raise bad("hyperv_generation", "the integer 2")
    if not SHA256_HEX.match(data["checksum_sha256"]):
        raise bad("checksum_sha256", "64 lowercase hex digits")
    if data["os"] != names.os:
        raise bad("os", f"{names.os!r} as in the archive's name")
    if data["version"] != names.version:
        raise bad("version", f"{names.version!r} as in the archive's name")
    if data["vm_name"] != names.vm_name:
        raise bad("vm_name", f"{names.vm_name!r}")
    if "disk_only" in data and not isinstance(data["disk_only"], bool):
        raise bad("disk_only", "true or false")


def read_manifest(zf: zipfile.ZipFile, names: VmgenieNames, *, limits: Limits | None = None,
                  strict_keys: bool = False) -> dict[str, Any]:
    """The manifest ``GMI-<Os>-<Version>.yml`` at the root, parsed and checked.

    ``strict_keys`` also refuses keys beyond vmgenie's: its ``GmiMetadata.Load`` builds a
    YamlDotNet deserializer without ``IgnoreUnmatchedProperties``, which throws on them.
    """
    limits = limits or Limits()
    entry = f"{names.stem}.yml"
    entries = zf.namelist()
    if entry not in entries:
        folder = _wrapping_folder(entries)
        hint = (f"; the zip wraps everything in the folder '{folder}/': zip the folder's contents"
                if folder else "; vmgenie needs it next to 'Virtual Hard Disks/'")
        raise ArchiveError(f"manifest {entry} is missing at the archive's root{hint}")
    data = _load_yaml(read_text(zf, entry, limits.max_text_size), entry)
    check_manifest(data, names, entry, strict_keys=strict_keys)
    return data


# --- the build record ----------------------------------------------------------------

def build_record(zf: zipfile.ZipFile, limits: Limits | None = None) -> dict[str, Any] | None:
    """The harness's build record in the archive (:data:`~harness.archive.format.RECORD_ENTRY`
    at its root), or None when it holds none (vmgenie needs none). Read as plain data only
    (no anchors, aliases or tags: a YAML bomb is refused, never expanded); one that cannot
    be read raises :class:`ArchiveError` saying why. The one reader of the record: the
    validator, the promotion, the release diff and the secrets scan all call it."""
    if RECORD_ENTRY not in zf.namelist():
        return None
    text = read_text(zf, RECORD_ENTRY, (limits or Limits()).max_text_size)
    try:
        data = safeyaml.load(text)
    except yaml.YAMLError as e:
        problem = " ".join(str(getattr(e, "problem", None) or e).split())[:200]
        raise ArchiveError(f"its {RECORD_ENTRY} is not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ArchiveError(f"its {RECORD_ENTRY} is not a mapping (it is {_type_name(data)})")
    return data


# --- the layout ----------------------------------------------------------------------

def _vmcx_entries(entries: list[str]) -> list[str]:
    return [e for e in entries if e.startswith(VM_DIR + "/") and e.lower().endswith(".vmcx")]


def layout(zf: zipfile.ZipFile, names: VmgenieNames, manifest: Mapping[str, Any]) -> Layout:
    """The tree vmgenie imports: the disk, one ``.vmcx`` (none when disk-only), no wrapper."""
    entries = zf.namelist()
    folder = _wrapping_folder(entries)
    if folder is not None:
        raise ArchiveError(f"the zip wraps everything in the folder '{folder}/'; vmgenie expects the "
                           "export's content at the root: zip the folder's contents")
    disk = names.vhdx_entry
    if disk not in entries:
        found = [e for e in entries if is_vhdx_entry(e)]
        raise ArchiveError(f"the disk '{disk}' is missing (found: {', '.join(found) or 'no VHDX'}); "
                           "the VHDX must be named after the VM")
    checkpoints = [e for e in entries if e.lower().endswith(".avhdx")]
    if checkpoints:
        raise ArchiveError(f"the archive holds a checkpoint disk '{checkpoints[0]}'; vmgenie copies "
                           "only the base VHDX: delete the VM's checkpoints and export again")
    vmcx = _vmcx_entries(entries)
    disk_only = manifest.get("disk_only") is True
    if len(vmcx) > 1:
        raise ArchiveError(f"the archive holds {len(vmcx)} .vmcx files under '{VM_DIR}/' "
                           f"({', '.join(vmcx)}); vmgenie imports exactly one: export one VM only")
    if not vmcx and not disk_only:
        raise ArchiveError(f"no .vmcx under '{VM_DIR}/' and the manifest does not say disk_only: "
                           "true; export the VM from Hyper-V (or mark a QEMU build disk-only)")
    if vmcx and disk_only:
        raise ArchiveError(f"the manifest says disk_only: true but the archive holds {vmcx[0]}; "
                           "set disk_only to false or drop the key")
    readme = f"{names.stem}.md"
    return Layout(manifest_entry=f"{names.stem}.yml", readme_entry=readme if readme in entries else None,
                  vhdx_entry=disk, vmcx_entry=vmcx[0] if vmcx else None, disk_only=disk_only,
                  snapshots_dir=any(e.startswith(SNAP_DIR + "/") for e in entries))


# --- extracting the disk -------------------------------------------------------------

EXTRACT_MARGIN = 64 * MiB
_CHUNK = 1 * MiB


def _write_chunk(dst: IO[bytes], data: bytes) -> None:
    """One write of the extraction (a seam for tests that simulate a full disk)."""
    dst.write(data)


def _target(dest_dir: Path, names: VmgenieNames) -> Path:
    dest = Path(dest_dir)
    if not dest.is_dir():
        raise ArchiveError(f"scratch folder {dest} does not exist; create it first")
    base = PurePosixPath(names.vhdx_entry).name
    target = dest / base
    if target.resolve().parent != dest.resolve() or base in ("", ".", ".."):
        raise ArchiveError(f"the disk name {base!r} would land outside {dest}; refuse the archive")
    if target.exists() or target.is_symlink():
        raise ArchiveError(f"{target} already exists; remove it or use an empty scratch folder")
    return target


def _check_space(dest: Path, need: int, margin: int) -> None:
    free = shutil.disk_usage(dest).free
    if free < need + margin:
        raise ArchiveSpaceError(f"not enough free space in {dest} to extract the disk: need "
                                f"{(need + margin) / GiB:.2f} GiB ({need} bytes plus a "
                                f"{margin // MiB} MiB margin), have {free / GiB:.2f} GiB; free "
                                "some space or use another scratch folder")


def _stream(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> str:
    """Copy one entry to a new file ``target``; return its SHA-256."""
    h = hashlib.sha256()
    written = 0
    with zf.open(info) as src, target.open("xb") as dst:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > info.file_size:
                raise ArchiveError(f"{info.filename} expands beyond its declared {info.file_size} "
                                   "bytes: a corrupt archive or a zip bomb; refuse it")
            h.update(chunk)
            _write_chunk(dst, chunk)
    return h.hexdigest()


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> str:
    """:func:`_stream` that removes the partial file on any failure, with one-line errors."""
    try:
        return _stream(zf, info, target)
    except FileExistsError as e:  # appeared since _target looked: not ours to remove
        raise ArchiveError(f"{target} already exists; remove it or use an empty scratch folder") from e
    except OSError as e:
        target.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ArchiveSpaceError(f"the disk filled up while extracting {info.filename} to "
                                    f"{target.parent} (removed the partial file); free at least "
                                    f"{info.file_size / GiB:.2f} GiB and retry") from e
        raise ArchiveError(f"cannot extract {info.filename} to {target.parent}: "
                           f"{e.strerror or e}; check the scratch folder") from e
    except NotImplementedError as e:  # Deflate64 (Windows Explorer's zips): .NET reads it, Python not
        target.unlink(missing_ok=True)
        raise ArchiveError(f"{info.filename} is compressed in a way Python's zipfile cannot read "
                           f"({e}); re-zip it with deflate (e.g. Compress-Archive or zip -r)") from e
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as e:
        target.unlink(missing_ok=True)
        raise ArchiveError(f"{info.filename} is corrupt inside the archive ({e}); {REBUILD}") from e
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def extract_vhdx(zf: zipfile.ZipFile, names: VmgenieNames, dest_dir: Path,
                 manifest: Mapping[str, Any] | None = None, *, margin: int = EXTRACT_MARGIN) -> Path:
    """Stream the disk to ``dest_dir/<vm_name>.vhdx``, verify its SHA-256 and its VHDX structure.

    Writes nothing anywhere else; on any failure the file is removed again. Returns the
    path of a disk that matches the manifest's ``checksum_sha256`` and is a valid,
    dynamic, self-contained VHDX.
    """
    manifest = manifest if manifest is not None else read_manifest(zf, names)
    try:
        info = zf.getinfo(names.vhdx_entry)
    except KeyError:
        raise ArchiveError(f"the disk '{names.vhdx_entry}' is missing from the archive; "
                           "the VHDX must be named after the VM") from None
    target = _target(Path(dest_dir), names)
    _check_space(Path(dest_dir), info.file_size, margin)
    digest = _extract(zf, info, target)
    try:
        expected = str(manifest.get("checksum_sha256", ""))
        if digest != expected:
            raise ArchiveError(f"the disk's SHA-256 {digest[:12]}... differs from the manifest's "
                               f"checksum_sha256 {expected[:12]}...; vmgenie would refuse it: {REBUILD}")
        vhdx.require_dynamic(vhdx.inspect(target))
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


@dataclass(frozen=True)
class ArchiveReport:
    """Everything :func:`check_archive` learnt about a valid archive."""

    names: VmgenieNames
    manifest: Mapping[str, Any]
    layout: Layout
    disk: vhdx.VhdxInfo


def check_archive(path: Path, scratch: Path, limits: Limits | None = None, *,
                  strict_keys: bool = False) -> ArchiveReport:
    """All of the above in order; the extracted disk is removed from ``scratch`` afterwards."""
    names = parse_name(path)
    with open_archive(path, limits) as zf:
        manifest = read_manifest(zf, names, limits=limits, strict_keys=strict_keys)
        lay = layout(zf, names, manifest)
        disk = extract_vhdx(zf, names, scratch, manifest)
        try:
            info = vhdx.inspect(disk)
        finally:
            disk.unlink(missing_ok=True)
    return ArchiveReport(names, manifest, lay, info)
