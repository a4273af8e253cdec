"""Typed views of what the Hyper-V scripts print as JSON.

A reply that lacks a field or has the wrong type raises :class:`ScriptError` naming the
script, instead of a ``KeyError`` deep in the backend.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from harness.backends.hyperv.transport import ScriptError


def _field(data: Any, key: str, kind: type | tuple[type, ...], script: str) -> Any:
    if not isinstance(data, dict):
        raise ScriptError(f"{script}.ps1 returned {type(data).__name__}, expected an object")
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ScriptError(f"{script}.ps1 returned no valid {key!r} (got {value!r})")
    return value


def as_list(value: Any) -> list[Any]:
    """PowerShell's ConvertTo-Json turns a one-element list into the element and an
    empty one into null: undo both."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class HostInfo:
    computer_name: str
    vhd_path: str
    switches: tuple[str, ...]
    supported_versions: tuple[str, ...] = ()  # Get-VMHostSupportedVersion
    default_version: str = ""
    os_version: str = ""
    os_build: int = 0

    @classmethod
    def parse(cls, data: Any) -> HostInfo:
        s = "host_info"
        return cls(_field(data, "ComputerName", str, s), _field(data, "VirtualHardDiskPath", str, s),
                   tuple(str(x) for x in as_list(data.get("Switches"))),
                   tuple(str(x) for x in as_list(data.get("SupportedVersions"))),
                   str(data.get("DefaultVersion") or ""), str(data.get("OsVersion") or ""),
                   int(data.get("OsBuild") or 0))


@dataclass(frozen=True)
class FileHash:
    path: str
    length: int
    sha256: str

    @classmethod
    def parse(cls, data: Any) -> FileHash:
        s = "file_hash"
        return cls(_field(data, "Path", str, s), _field(data, "Length", int, s),
                   _field(data, "Sha256", str, s).lower())


@dataclass(frozen=True)
class Adapter:
    mac: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Neighbour:
    address: str
    mac: str
    state: str


def usable_address(text: str) -> bool:
    """An address SSH can use: not link-local (169.254/16, fe80::/10), not loopback."""
    try:
        ip = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return False
    return not (ip.is_link_local or ip.is_loopback or ip.is_unspecified or ip.is_multicast)


def _prefer_v4(addresses: list[str]) -> str | None:
    good = [a for a in addresses if usable_address(a)]
    v4 = [a for a in good if ":" not in a]
    pick = v4 or good
    return pick[0] if pick else None


@dataclass(frozen=True)
class VmStatus:
    name: str  # the VM's name on the host (the build's own; 'GMI <Os> <Version>' only in its export)
    state: str
    heartbeat: str
    notes: str
    adapters: tuple[Adapter, ...]
    neighbours: tuple[Neighbour, ...]

    @classmethod
    def parse(cls, data: Any) -> VmStatus:
        s = "vm_status"
        adapters = tuple(
            Adapter(_field(a, "MacAddress", str, s),
                    tuple(str(x) for x in as_list(a.get("IPAddresses"))))
            for a in as_list(data.get("Adapters") if isinstance(data, dict) else None))
        neighbours = tuple(
            Neighbour(_field(n, "IPAddress", str, s), _field(n, "LinkLayerAddress", str, s),
                      str(n.get("State", "")))
            for n in as_list(data.get("Neighbours") if isinstance(data, dict) else None))
        return cls(_field(data, "Name", str, s), _field(data, "State", str, s),
                   str(data.get("Heartbeat") or "unknown"), str(data.get("Notes") or ""),
                   adapters, neighbours)

    def kvp_addresses(self) -> list[str]:
        """What the guest's KVP daemon reported, link-local addresses left out."""
        return [a for ad in self.adapters for a in ad.addresses if usable_address(a)]

    def address(self) -> tuple[str, str] | None:
        """(address, source): KVP first, else the host's neighbour table by MAC."""
        kvp = _prefer_v4(self.kvp_addresses())
        if kvp:
            return kvp, "kvp"
        macs = {a.mac.upper() for a in self.adapters}
        seen = [n.address for n in self.neighbours
                if n.mac.upper() in macs and n.state not in ("Unreachable", "Incomplete")]
        neighbour = _prefer_v4(seen)
        return (neighbour, "neighbour") if neighbour else None


@dataclass(frozen=True)
class CompactResult:
    path: str
    merged: tuple[str, ...]
    bytes_before: int
    bytes_after: int
    virtual_size: int
    optimize_mode: str  # what Optimize-VHD really ran: Full (attached read-only) or Prezeroed
    mount_error: str = ""  # why the VHDX could not be attached read-only
    checkpoints: tuple[str, ...] = ()  # the checkpoints merged into the disk (by name)

    @classmethod
    def parse(cls, data: Any) -> CompactResult:
        s = "compact_disk"
        return cls(_field(data, "Path", str, s), tuple(as_list(data.get("Merged"))),
                   _field(data, "BytesBefore", int, s), _field(data, "BytesAfter", int, s),
                   _field(data, "VirtualSize", int, s), _field(data, "OptimizeMode", str, s),
                   str(data.get("MountError") or ""),
                   tuple(str(c) for c in as_list(data.get("Checkpoints"))))


@dataclass(frozen=True)
class ExportedFile:
    path: str  # relative to the export root, with backslashes as the host wrote them
    length: int

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in self.path.replace("\\", "/").split("/") if p)


@dataclass(frozen=True)
class ExportResult:
    root: str
    files: tuple[ExportedFile, ...]
    vhdx: str
    vhdx_sha256: str
    emptied_media: tuple[str, ...] = ()  # ISO paths left out of the export (put back after)

    @property
    def vmcx(self) -> str:
        """The exported configuration on the host (vmgenie's Import-VM reads it)."""
        return next(f.path for f in self.files if f.path.lower().endswith(".vmcx"))

    @classmethod
    def parse(cls, data: Any) -> ExportResult:
        s = "export_vm"
        files = tuple(ExportedFile(_field(f, "Path", str, s), _field(f, "Length", int, s))
                      for f in as_list(data.get("Files") if isinstance(data, dict) else None))
        vmcx = [f for f in files if f.path.lower().endswith(".vmcx")]
        if len(vmcx) != 1:
            raise ScriptError(f"export_vm.ps1 reported {len(vmcx)} .vmcx files; vmgenie imports "
                              "exactly one")
        return cls(_field(data, "Root", str, s), files, _field(data, "Vhdx", str, s),
                   _field(data, "VhdxSha256", str, s).lower(),
                   tuple(str(x) for x in as_list(data.get("EmptiedMedia"))))


@dataclass(frozen=True)
class ImportCheck:
    """Compare-VM's report on the exported .vmcx: Hyper-V's own words for each
    incompatibility (empty: it imports)."""

    vmcx: str
    incompatibilities: tuple[dict[str, Any], ...]

    @classmethod
    def parse(cls, data: Any) -> ImportCheck:
        s = "import_check"
        found = []
        for i in as_list(data.get("Incompatibilities") if isinstance(data, dict) else None):
            if not isinstance(i, dict):
                raise ScriptError(f"{s}.ps1 returned an incompatibility that is not an object: {i!r}")
            found.append({"MessageId": i.get("MessageId"), "Message": str(i.get("Message") or "")})
        return cls(_field(data, "Vmcx", str, s), tuple(found))


# Integration services by the GUID at the end of their Id: the same on every host,
# whereas the names are localized (German hosts say "Takt", "Herunterfahren", ...).
SERVICE_IDS = {
    "84EAAE65-2F2E-45F5-9BB5-0E857DC8EB47": "Heartbeat",
    "2A34B1C2-FD73-4043-8A5B-DD2159BC743F": "Key-Value Pair Exchange",
    "5CED1297-4598-4915-A5FC-AD21BB4D02A4": "VSS",
    "9F8233AC-BE49-4C79-8EE3-E7E1985B2077": "Shutdown",
    "2497F4DE-E9FA-4204-80E4-4B75C46419C0": "Time Synchronization",
    "6C09BB55-D683-4DA0-8931-C9BF705F6480": "Guest Service Interface",
}


def service_key(service_id: str, name: str) -> str:
    """The English name of an integration service, from its Id's GUID; else ``name``."""
    guid = service_id.replace("/", "\\").rsplit("\\", 1)[-1].strip().strip("{}").upper()
    return SERVICE_IDS.get(guid, name)


@dataclass(frozen=True)
class IntegrationService:
    name: str  # the English name (by the Id's GUID), whatever the host's language
    enabled: bool
    status: str
    secondary: str
    display_name: str = ""  # the host's own, possibly localized, name
    operational: str = ""  # PrimaryOperationalStatus: an enum name ("Ok"), never localized

    @property
    def ok(self) -> bool:
        """OK by the (unlocalized) operational status; by the description when absent."""
        return self.operational == "Ok" if self.operational else self.status == "OK"

    @classmethod
    def parse_all(cls, data: Any) -> list[IntegrationService]:
        s = "integration_services"
        found = []
        for d in as_list(data):
            shown = _field(d, "Name", str, s)
            found.append(cls(service_key(str(d.get("Id") or ""), str(d.get("Key") or shown)),
                             _field(d, "Enabled", bool, s),
                             str(d.get("PrimaryStatusDescription") or ""),
                             str(d.get("SecondaryStatusDescription") or ""), shown,
                             str(d.get("PrimaryOperationalStatus") or "")))
        return found


def vm_record(reply: dict[str, Any]) -> dict[str, Any]:
    """What the build record keeps of new_vm.ps1's reply."""
    return {k: reply.get(k) for k in ("Id", "Name", "Version", "Generation", "SecureBoot",
                                      "SecureBootTemplate", "BootOrder", "State", "Vhdx")}
