"""Known vulnerabilities of the packages an SBOM lists, from a local file or a URL
(``--vuln-db``) in one of two formats:

- **Debian's security tracker** JSON (``https://security-tracker.debian.org/tracker/data/json``):
  ``{source package: {CVE: {"releases": {codename: {"status", "fixed_version",
  "urgency", "repositories": {suite: version}}}}}}``. A package is affected when the
  release's entry is open or undetermined, or resolved in a version newer than the one
  installed (compared as dpkg does, source package against source version); the fix is
  "in the archive" when one of the release's suites already carries that version.
- **OSV** (``https://ossf.github.io/osv-schema/``): one record, a list of records, or a
  zip of them (osv.dev's ``<ecosystem>/all.zip``), for any family: a record's ``affected``
  entry for the distro's ecosystem (``Debian:12``, ``Rocky Linux:9``, ``openSUSE:Leap
  15.6``) and the package (binary or source name) with an ECOSYSTEM range holding the
  installed version. A ``fixed`` event means the fix was published in the distro's
  repositories.

``--vuln-gate`` turns the report into a rule the export must pass: ``fixable`` (no
finding whose fix is in the archive: the image is behind its own archive) or ``high`` (no
finding of high or critical severity, fixed or not); ``off`` (the default) only reports.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.errors import GmiError
from harness.evidence import versions

HIGH = ("high", "critical", "important")
REPORT_FILE = "vulnerabilities.json"
MAX_DB_BYTES = 2 << 30  # the whole tracker is ~80 MB; OSV's biggest all.zip under 1 GB
# OSV ecosystems by os-release ID (https://ossf.github.io/osv-schema/#defined-ecosystems)
OSV_ECOSYSTEMS = {"debian": "Debian", "ubuntu": "Ubuntu", "rocky": "Rocky Linux",
                  "almalinux": "AlmaLinux", "opensuse-leap": "openSUSE:Leap",
                  "opensuse-tumbleweed": "openSUSE:Tumbleweed", "fedora": "Fedora",
                  "rhel": "Red Hat"}


class VulnDbError(GmiError):
    """The vulnerability data cannot be read."""


@dataclass(frozen=True)
class Installed:
    """A package as the SBOM lists it (from its purl)."""

    name: str
    version: str  # deb: [epoch:]version; rpm: [epoch:]version-release
    source: str
    source_version: str
    built_using: tuple[tuple[str, str], ...] = ()  # deb: other sources it was built from


@dataclass(frozen=True)
class Finding:
    """One known vulnerability of one installed (source) package."""

    id: str  # CVE-..., or the OSV id when it has no CVE alias
    package: str  # the source package (Debian) or the package the record names
    binaries: tuple[str, ...]  # the installed packages built from it
    installed: str
    fixed: str  # "" when no fix is known
    severity: str  # the data's own word: low, medium, high, unimportant, Important...
    fix_in_archive: bool
    status: str = ""  # Debian: open, resolved, undetermined
    summary: str = ""

    @property
    def high(self) -> bool:
        return self.severity.lower().rstrip("*") in HIGH


@dataclass
class Report:
    """The vulnerability report of one image."""

    source: str  # where the data came from
    data_format: str  # debian-tracker | osv
    data_sha256: str
    read_at: str
    release: str  # the codename or OSV ecosystem the data was read for
    packages: int
    findings: list[Finding] = field(default_factory=list)
    gate: str = "off"

    @property
    def fixable(self) -> list[Finding]:
        return [f for f in self.findings if f.fix_in_archive]

    @property
    def high(self) -> list[Finding]:
        return [f for f in self.findings if f.high]

    def blocking(self, gate: str | None = None) -> list[Finding]:
        rule = self.gate if gate is None else gate
        return self.fixable if rule == "fixable" else self.high if rule == "high" else []

    def verdict(self) -> str:
        """One line: what the gate says about this report."""
        blocking = self.blocking()
        if self.gate == "off":
            return "report only (--vuln-gate=off)"
        if not blocking:
            return f"passes --vuln-gate={self.gate}"
        what = "with a fix in the archive" if self.gate == "fixable" else "of high severity"
        ids = ", ".join(f"{f.id} ({f.package})" for f in blocking[:5])
        more = f" and {len(blocking) - 5} more" if len(blocking) > 5 else ""
        return (f"--vuln-gate={self.gate}: {len(blocking)} known vulnerabilit"
                f"{'y' if len(blocking) == 1 else 'ies'} {what}: {ids}{more}")

    def to_dict(self) -> dict[str, Any]:
        order = sorted(self.findings, key=lambda f: (not f.fix_in_archive, not f.high, f.package, f.id))
        return {
            "source": self.source, "format": self.data_format, "data_sha256": self.data_sha256,
            "read_at": self.read_at, "release": self.release, "packages": self.packages,
            "gate": self.gate, "blocked": bool(self.blocking()), "verdict": self.verdict(),
            "counts": {"total": len(self.findings), "fixable": len(self.fixable),
                       "high": len(self.high)},
            "findings": [{**asdict(f), "binaries": list(f.binaries), "high": f.high} for f in order],
        }


# ------------------------------------------------------------------------- the data


def is_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https", "file")


def read_bytes(source: str, timeout: float = 120) -> bytes:
    """The data as stored: a file, or what an http(s) URL serves (bounded)."""
    try:
        if is_url(source):
            with urllib.request.urlopen(source, timeout=timeout) as r:
                data = r.read(MAX_DB_BYTES + 1)
        else:
            data = Path(source).expanduser().read_bytes()
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise VulnDbError(f"--vuln-db {source}: cannot be read ({exc}); give a local copy "
                          "of the data with --vuln-db PATH") from None
    if len(data) > MAX_DB_BYTES:
        raise VulnDbError(f"--vuln-db {source}: larger than {MAX_DB_BYTES >> 20} MiB")
    return data


def _decompressed(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(data)
    return data


def parse(data: bytes, source: str) -> tuple[str, Any]:
    """(format, parsed data): ``debian-tracker`` with its mapping, or ``osv`` with a
    list of records."""
    if data[:4] == b"PK\x03\x04":
        records = []
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for name in zf.namelist():
                    if name.endswith(".json"):
                        records.append(json.loads(zf.read(name)))
        except (zipfile.BadZipFile, ValueError) as exc:
            raise VulnDbError(f"--vuln-db {source}: not a zip of OSV records ({exc})") from None
        return "osv", records
    try:
        doc = json.loads(_decompressed(data))
    except (ValueError, OSError, lzma.LZMAError) as exc:
        raise VulnDbError(f"--vuln-db {source}: not JSON ({exc})") from None
    if isinstance(doc, list):
        return "osv", [r for r in doc if isinstance(r, dict)]
    if isinstance(doc, dict) and "affected" in doc and "id" in doc:
        return "osv", [doc]
    if isinstance(doc, dict) and all(isinstance(v, dict) for v in list(doc.values())[:50]):
        return "debian-tracker", doc
    raise VulnDbError(f"--vuln-db {source}: neither Debian's security tracker JSON nor OSV records")


# --------------------------------------------------------------------- the matching


def installed_from_sbom(components: Iterable[Mapping[str, Any]]) -> list[Installed]:
    """The installed packages of a CycloneDX SBOM's components (their purls)."""
    from packageurl import PackageURL

    found = []
    for c in components:
        try:
            p = PackageURL.from_string(str(c["purl"]))
        except (KeyError, ValueError):
            continue
        q = dict(p.qualifiers or {}) if isinstance(p.qualifiers, dict) else {}
        version = p.version or ""
        if q.get("epoch"):
            version = f"{q['epoch']}:{version}"
        source, _, source_version = str(q.get("upstream", "")).partition("@")
        built = tuple(tuple(str(prop.get("value", "")).split(" ", 1)) for prop in c.get("properties") or []
                      if isinstance(prop, dict) and prop.get("name") == "gmi-harness:built-using"
                      and " " in str(prop.get("value", "")))
        found.append(Installed(p.name, version, source or p.name, source_version or version,
                               built))  # type: ignore[arg-type]
    return found


def scan_debian(tracker: Mapping[str, Any], packages: Iterable[Installed],
                codename: str) -> list[Finding]:
    """Findings from the security tracker's data for the release ``codename``."""
    by_source: dict[tuple[str, str], list[str]] = {}
    for p in packages:  # (a signed kernel's CVEs are linux's: its Built-Using)
        for origin in ((p.source, p.source_version), *p.built_using):
            by_source.setdefault(origin, []).append(p.name)
    findings = []
    for (source, installed), binaries in sorted(by_source.items()):
        entries = tracker.get(source)
        if not isinstance(entries, dict):
            continue
        for cve, entry in sorted(entries.items()):
            release = (entry.get("releases") or {}).get(codename) if isinstance(entry, dict) else None
            if not isinstance(release, dict):
                continue
            status = str(release.get("status", ""))
            fixed = str(release.get("fixed_version", "") or "")
            if status == "resolved":
                if not fixed or fixed == "0" or versions.dpkg_compare(installed, fixed) >= 0:
                    continue
            elif status not in ("open", "undetermined"):
                continue
            else:
                fixed = ""
            repos = [str(v) for v in (release.get("repositories") or {}).values() if v]
            in_archive = bool(fixed) and any(versions.dpkg_compare(v, fixed) >= 0 for v in repos)
            findings.append(Finding(
                id=cve, package=source, binaries=tuple(sorted(binaries)), installed=installed,
                fixed=fixed, severity=str(release.get("urgency", "") or "unassigned"),
                fix_in_archive=in_archive, status=status,
                summary=str(entry.get("description", "") or "")[:300]))
    return findings


def _events(rng: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for event in rng.get("events") or []:
        if isinstance(event, dict):
            for kind in ("introduced", "fixed", "last_affected", "limit"):
                if kind in event:
                    yield kind, str(event[kind])


def _affected(family: str, installed: str, rng: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether ``installed`` lies in an ECOSYSTEM range, and the fixed version after it."""
    inside, fixed = False, ""
    for kind, version in _events(rng):
        if kind == "introduced":
            if version == "0" or versions.compare(family, installed, version) >= 0:
                inside, fixed = True, ""
        elif kind == "fixed" and inside:
            if versions.compare(family, installed, version) < 0:
                return True, version
            inside = False
        elif kind == "last_affected" and inside:
            if versions.compare(family, installed, version) <= 0:
                return True, ""
            inside = False
    return inside, fixed


def _severity(record: Mapping[str, Any], affected: Mapping[str, Any]) -> str:
    for where in (affected.get("ecosystem_specific"), affected.get("database_specific"),
                  record.get("database_specific")):
        if isinstance(where, dict):
            for key in ("severity", "urgency"):
                if where.get(key):
                    return str(where[key])
    for s in record.get("severity") or []:
        if isinstance(s, dict) and s.get("score"):
            return str(s["score"])
    return "unassigned"


def osv_ecosystem(os_id: str, os_version: str) -> str:
    """The OSV ecosystem of a release: ``Debian:12``, ``Ubuntu:24.04``, ``Rocky Linux:9``
    (the major version), ``openSUSE:Leap 15.6``, ``openSUSE:Tumbleweed``."""
    base = OSV_ECOSYSTEMS.get(os_id, os_id)
    if base == "openSUSE:Leap":
        return f"{base} {os_version}"
    if base.startswith("openSUSE:") or not os_version:
        return base
    if base in ("Rocky Linux", "AlmaLinux", "Red Hat"):
        return f"{base}:{os_version.split('.')[0]}"
    return f"{base}:{os_version}"


def scan_osv(records: Iterable[Mapping[str, Any]], packages: Iterable[Installed], family: str,
             ecosystem: str) -> list[Finding]:
    """Findings from OSV records whose ``affected`` entries name ``ecosystem`` (or one of
    its sub-ecosystems, ``Ubuntu:24.04:LTS``)."""
    by_name: dict[str, list[Installed]] = {}
    for p in packages:
        by_name.setdefault(p.name, []).append(p)
        if p.source != p.name:
            by_name.setdefault(p.source, []).append(p)
    findings: dict[tuple[str, str], Finding] = {}
    for record in records:
        rid = str(record.get("id", ""))
        cves = [a for a in record.get("aliases") or [] if str(a).startswith("CVE-")]
        for affected in record.get("affected") or []:
            pkg = affected.get("package") or {}
            eco = str(pkg.get("ecosystem", ""))
            if not (eco == ecosystem or eco.startswith(ecosystem + ":")):
                continue
            for p in by_name.get(str(pkg.get("name", "")), []):
                use_source = p.name != pkg.get("name")
                installed = p.source_version if use_source else p.version
                hit, fixed = False, ""
                for rng in affected.get("ranges") or []:
                    if rng.get("type") == "ECOSYSTEM":
                        hit, fixed = _affected(family, installed, rng)
                        if hit:
                            break
                if not hit and installed in [str(v) for v in affected.get("versions") or []]:
                    hit = True
                if not hit:
                    continue
                name = str(pkg.get("name"))
                for cve in cves or [rid]:
                    key = (cve, name)
                    old = findings.get(key)
                    binaries = tuple(sorted({p.name, *(old.binaries if old else ())}))
                    findings[key] = Finding(
                        id=cve, package=name, binaries=binaries, installed=installed, fixed=fixed,
                        severity=_severity(record, affected), fix_in_archive=bool(fixed),
                        status="fixed" if fixed else "open",
                        summary=str(record.get("summary", "") or record.get("details", ""))[:300])
    return sorted(findings.values(), key=lambda f: (f.package, f.id))


def scan(source: str, packages: list[Installed], *, family: str, os_id: str, os_version: str,
         codename: str, gate: str = "off", data: bytes | None = None) -> Report:
    """The report for ``packages`` against the data at ``source``."""
    raw = read_bytes(source) if data is None else data
    kind, parsed = parse(raw, source)
    if kind == "debian-tracker":
        if not codename:
            raise VulnDbError(f"--vuln-db {source} is Debian's security tracker data; the distro "
                              "has no Debian codename to look up: give OSV records instead")
        found, release = scan_debian(parsed, packages, codename), codename
    else:
        release = osv_ecosystem(os_id, os_version)
        found = scan_osv(parsed, packages, family, release)
    return Report(source=source, data_format=kind, data_sha256=hashlib.sha256(raw).hexdigest(),
                  read_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), release=release,
                  packages=len(packages), findings=found, gate=gate)


def write(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    tmp.replace(path)
    return path


def clean(value: Any) -> dict[str, Any]:
    """A report as a sign-off page may show it (CI artifacts are not trusted): known keys,
    plain values."""
    if not isinstance(value, dict) or not value:
        return {}
    text = ("source", "format", "data_sha256", "read_at", "release", "gate", "verdict", "none")
    out: dict[str, Any] = {k: str(value[k]) for k in text if k in value}
    out["blocked"] = bool(value.get("blocked"))
    out["packages"] = int(value["packages"]) if str(value.get("packages", "")).isdigit() else 0
    counts: dict[str, Any] = value["counts"] if isinstance(value.get("counts"), dict) else {}
    out["counts"] = {k: int(counts[k]) for k in ("total", "fixable", "high")
                     if str(counts.get(k, "")).isdigit()}
    rows = []
    for f in value.get("findings") or []:
        if isinstance(f, dict):
            row: dict[str, Any] = {k: str(f.get(k, "")) for k in
                                   ("id", "package", "installed", "fixed", "severity", "status", "summary")}
            row["binaries"] = [str(b) for b in f.get("binaries") or []]
            row["fix_in_archive"], row["high"] = bool(f.get("fix_in_archive")), bool(f.get("high"))
            rows.append(row)
    out["findings"] = rows
    return out
