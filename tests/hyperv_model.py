"""A MODEL of a Hyper-V host, built from Microsoft's documentation: not a real host.

No Windows host exists on the machines this harness is developed on. Where the replay
fake (tests/hyperv_fake.py) answers each script with a recording, this model keeps the
host's state and changes it the way Microsoft's cmdlet reference says the cmdlets do,
so that the backend's mistakes about a real host show as test failures:

- VMs have an Id and a name; names are not unique (``New-VM`` accepts a name that is
  taken; ``Get-VM -Name`` returns every match; ``Get-VM -Id`` one or an error);
- ``Set-VMFirmware -BootOrder`` replaces the boot order: "Any existing boot entries not
  specified by this command will be removed" (Set-VMFirmware, example 3);
  ``-FirstBootDevice`` moves one entry first;
- configuration versions: ``New-VM -Version`` must be one of
  ``Get-VMHostSupportedVersion``'s, without it the host's default; a ``.vmcx`` imports
  only on a host that supports its version (the table in "Upgrade virtual machine
  version in Hyper-V on Windows or Windows Server");
- a cmdlet parameter the host's module lacks fails as PowerShell fails ("A parameter
  cannot be found that matches parameter name ..."): the parameters are those of the
  host's Windows Server version in tests/data/powershell-reference.json, with the
  corrections of tests/test_hyperv_cmdlets.py (Server 2016 has no
  ``-AutomaticCheckpointsEnabled``);
- checkpoints are ``.avhdx`` children merged into the parent by ``Remove-VMSnapshot``
  (the VM shows "Merging" a moment after);
- DVD drives hold a path (``Set-VMDvdDrive -Path $null`` empties one, example 2);
- ``Export-VM -Path P`` writes ``P\\<VM name>\\`` with ``Virtual Machines\\<ID>.vmcx``
  (and ``.vmgs``, ``.VMRS``), ``Virtual Hard Disks\\<disk file names>``, ``Snapshots\\``;
  the model's ``.vmcx`` is JSON (only Hyper-V writes the real binary format) holding
  what an import reads: Id, name, version, disks by file name, DVD paths, switches;
- ``Compare-VM -Path <vmcx> -Copy [-GenerateNewId]`` registers nothing and lists
  incompatibilities: a switch the host lacks (33012, "Could not find Ethernet switch
  'X'.", the page's example 2), a file the configuration points at that is not there,
  a disk missing from the import folder, an Id already registered (without
  ``-GenerateNewId``); a configuration version the host does not support cannot be
  read at all (an error). Message ids other than 33012 and the wording of the others
  are the model's, not Hyper-V's;
- files ``Export-VM`` and ``New-VHD`` write are the Hyper-V service's (VMMS): an account
  that is not an administrator may rename or remove them only where the VHD folder
  grants it Modify by inheritance (docs/hyperv.md, "Host prerequisites");
- right after a VM turns Off its disk stays in use for a moment (``held_after_off``
  file operations): Mount-VHD and Remove-Item fail "being used by another process".

Two things come from elsewhere and say so: ``TypeText`` may return 4096 ("job
started", Microsoft's Msvm_Keyboard reference), and unpaced long ``TypeText`` runs
lose keystrokes right after power-on (hashicorp/packer#5291; ``keyboard_drops``).

The scripts themselves cannot run here (no PowerShell): each ``scripts/<name>.ps1`` has
a Python twin in tests/hyperv_model_scripts.py that calls the same cmdlets with the
same parameters in the same order; :meth:`HostModel.check_twins` fails a test whose
twin called a cmdlet, or passed a parameter, that its script does not.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

from harness.backends.hyperv.transport import PowerShell, ScriptError, script_text

sys.path.insert(0, str(Path(__file__).parent))
from powershell_calls import script_calls

REFERENCE = json.loads((Path(__file__).parent / "data" / "powershell-reference.json").read_text())

# Get-VMHostSupportedVersion per host (Microsoft's table of supported configuration
# versions for long-term servicing hosts); the default is the newest.
SUPPORTED_VERSIONS = {
    "winserver2016-ps": ["5.0", "6.2", "7.0", "7.1", "8.0"],
    "winserver2019-ps": ["5.0", "6.2", "7.0", "7.1", "8.0", "8.1", "8.2", "8.3", "9.0"],
    "winserver2022-ps": ["8.0", "8.1", "8.2", "8.3", "9.0", "9.1", "9.2", "9.3", "10.0"],
    "winserver2025-ps": ["8.0", "8.1", "8.2", "8.3", "9.0", "9.1", "9.2", "9.3", "10.0", "11.0", "12.0"],
}
OS_BUILDS = {"winserver2016-ps": 14393, "winserver2019-ps": 17763, "winserver2022-ps": 20348,
             "winserver2025-ps": 26100}
# Parameters a host lacks although its page lists them (tests/test_hyperv_cmdlets.py)
ABSENT = {("winserver2016-ps", "set-vm", "automaticcheckpointsenabled")}
SERVICE_GUIDS = {
    "Heartbeat": "84EAAE65-2F2E-45F5-9BB5-0E857DC8EB47",
    "Key-Value Pair Exchange": "2A34B1C2-FD73-4043-8A5B-DD2159BC743F",
    "VSS": "5CED1297-4598-4915-A5FC-AD21BB4D02A4",
    "Shutdown": "9F8233AC-BE49-4C79-8EE3-E7E1985B2077",
    "Time Synchronization": "2497F4DE-E9FA-4204-80E4-4B75C46419C0",
    "Guest Service Interface": "6C09BB55-D683-4DA0-8931-C9BF705F6480",
}
COMMON = {"erroraction", "warningaction", "verbose", "debug", "errorvariable", "outvariable"}
DENIED = "Access to the path '{}' is denied."
NEW_DISK, INSTALLED_DISK = b"vhdx:empty", b"vhdx:an installed OS"
IN_USE = ("The process cannot access the file '{}' because it is being used by another "
          "process.")


class HostError(Exception):
    """What PowerShell would report (a terminating error) on the modelled host."""


def key(path: str) -> str:
    """A Windows path as the file system compares it: case-insensitive, '/' is '\\'."""
    return str(PureWindowsPath(path.replace("/", "\\"))).rstrip("\\").lower()


def full(path: str) -> str:
    """[IO.Path]::GetFullPath: separators made '\\', nothing else changed."""
    return str(PureWindowsPath(path.replace("/", "\\")))


@dataclass
class Drive:
    kind: str  # HardDiskDrive | DvdDrive
    path: str | None
    vm_id: str

    @property
    def boot_type(self) -> str:
        return "Drive"


@dataclass
class Adapter:
    mac: str
    switch: str | None
    vm_id: str

    @property
    def boot_type(self) -> str:
        return "Network"


@dataclass
class Guest:
    """What runs inside a VM, as far as the host sees it: an installer that powers the
    VM off after ``install_polls`` looks at it, then an OS whose KVP daemon reports
    ``address`` once it has been polled ``address_after`` times."""

    address: str = "192.168.50.23"
    install_polls: int = 1
    address_after: int = 1
    installed: bool = False
    polls: int = 0
    services_ok: bool = True


@dataclass
class VM:
    id: str
    name: str
    version: str
    folder: str
    generation: int = 2
    state: str = "Off"
    notes: str = ""
    memory_startup: int = 512 << 20
    dynamic_memory: bool = False
    memory_minimum: int = 512 << 20
    memory_maximum: int = 1 << 40
    processors: int = 1
    secure_boot: str = "On"
    template: str = "MicrosoftWindows"
    drives: list[Drive] = field(default_factory=list)
    adapters: list[Adapter] = field(default_factory=list)
    boot_order: list[Any] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)  # .avhdx, newest last
    automatic_checkpoints: bool | None = True  # None: the host has no such setting
    checkpoint_type: str = "Production"
    automatic_stop_action: str = "Save"
    automatic_start_action: str = "StartIfRunning"
    status: list[str] = field(default_factory=list)  # operational statuses still to come
    shown_status: str = ""  # what the last Get-VM showed (Status / OperationalStatus)
    guest: Guest | None = None

    def disks(self) -> list[Drive]:
        return [d for d in self.drives if d.kind == "HardDiskDrive"]

    def dvds(self) -> list[Drive]:
        return [d for d in self.drives if d.kind == "DvdDrive"]


@dataclass
class File:
    data: bytes
    by_service: bool = False  # written by VMMS (Export-VM, New-VHD), not the account


class HostModel(PowerShell):
    """The modelled host, and the transport to it (a :class:`PowerShell` whose scripts
    are their twins, tests/hyperv_model_scripts.py)."""

    def __init__(self, version: str = "winserver2022-ps", *, host: str = "hv01",
                 computer: str = "HV01", vhd_root: str = "D:\\Hyper-V\\Virtual Hard Disks",
                 switches: tuple[str, ...] = ("External", "Default Switch"),
                 admin: bool = True, inherited_modify: bool = True,
                 volumes: tuple[str, ...] = ("C:\\", "D:\\", "E:\\")) -> None:
        from hyperv_model_scripts import TWINS

        self.twins = TWINS
        self.host = host
        self.version = version
        self.computer = computer
        self.vhd_root = vhd_root
        self.switches = list(switches)
        self.admin = admin  # False: a member of Hyper-V Administrators only
        self.inherited_modify = inherited_modify  # the VHD root grants the account Modify (OI)(CI)
        self.volumes = sorted(volumes, key=len, reverse=True)  # mount points, longest first
        self.supported = list(SUPPORTED_VERSIONS[version])
        self.default_version = self.supported[-1]
        self.vms: dict[str, VM] = {}
        self.files: dict[str, File] = {}
        self.dirs: set[str] = set()
        self.names: dict[str, str] = {}  # key -> the path as first written
        self.denied: set[str] = set()  # paths the account may not read (a share, second hop)
        self.permission_denied = False  # Get-VM fails: the account is not allowed
        self.held_after_off = 0  # file operations a disk stays in use after its VM stops
        self.held: dict[str, int] = {}
        self.keyboard_return = 0  # TypeText's return value (0, or 4096: job started)
        self.keyboard_drops = False  # unpaced long TypeText runs lose characters
        self.typed: list[str] = []
        self.typed_at: list[float] = []
        self.now = 0.0  # the host's clock (Start-Sleep advances it)
        self.calls: list[tuple[str, str, frozenset[str]]] = []  # (script, cmdlet, parameters)
        self.vm_args: dict[tuple[str, str], set[str]] = {}  # the VMs each cmdlet was given
        self.script = ""
        self.scripts_run: list[tuple[str, dict[str, Any]]] = []
        self.break_session: dict[str, Callable[[], None]] = {}  # script -> runs, then the session breaks
        self.guests: list[Guest] = []  # given to the next VMs New-VM creates, in order
        self.uploads = 0
        self.break_upload_at: int | None = None  # the session breaks after this many bytes
        self.corrupt_next_chunk = False  # the next chunk arrives with a bit flipped
        for folder in ("C:\\", "D:\\", "E:\\", vhd_root, "D:\\iso"):
            self.mkdir(folder)

    # --- the transport -------------------------------------------------------------

    def invoke(self, name: str, text: str, params: dict[str, Any]) -> Any:
        assert text == script_text(name)  # the real script is what would be sent
        json.dumps(params)  # parameters travel serialized
        if name not in self.twins:
            raise AssertionError(f"the model has no twin of {name}.ps1")
        self.script = name
        self.scripts_run.append((name, params))
        try:
            out = self.twins[name](self, dict(params))
        except HostError as exc:
            raise ScriptError(f"{name}.ps1 failed on {self.host}: {exc}") from None
        finally:
            self.script = ""
        if name in self.break_session:
            from harness.backends.hyperv.transport import TransportError

            self.break_session.pop(name)()
            raise TransportError(f"{name}.ps1 on {self.host}: the PowerShell Remoting session "
                                 "broke during the call; not run again")
        return json.loads(json.dumps(out)) if out is not None else None

    def put(self, local: Path, remote: str) -> None:
        """The transport's upload: in chunks into the run's folder where the transport
        has that (``upload_in_chunks``); else what pypsrp 0.9.1's ``Client.copy`` does
        (its copy.ps1: the whole file into ``[IO.Path]::GetTempFileName()``, the
        account's TEMP on C:, then ``[IO.File]::Move`` to the destination)."""
        from harness.backends.hyperv import transport

        self.uploads += 1
        if hasattr(transport, "upload_in_chunks"):
            transport.upload_in_chunks(self, local, remote, chunk=64 << 10)
            return
        temp = f"C:\\Users\\gmi-builder\\AppData\\Local\\Temp\\tmp{self.uploads:04X}.tmp"
        self.mkdir(str(PureWindowsPath(temp).parent))
        data = local.read_bytes()
        if self.break_upload_at is not None:
            self.write(temp, data[:self.break_upload_at])
            self.break_upload_at = None
            raise transport.TransportError(f"copying {local} to {self.host}:{remote} failed: "
                                           "the session broke")
        self.write(temp, data)
        self.move(temp, remote)

    def get(self, remote: str, local: Path) -> None:
        from harness.backends.hyperv.transport import fetch_in_chunks

        fetch_in_chunks(self, remote, local, chunk=64 << 10)

    def names_run(self) -> list[str]:
        return [n for n, _ in self.scripts_run]

    def params(self, name: str) -> dict[str, Any]:
        found = [p for n, p in self.scripts_run if n == name]
        assert found, f"{name} never ran; ran {self.names_run()}"
        return found[-1]

    # --- the twins' honesty --------------------------------------------------------

    def cmd(self, cmdlet: str, **params: Any) -> Any:
        """One cmdlet call of the running script: recorded, its parameters checked
        against this host's module, then done. ``_pipe``: pipeline input (not a named
        parameter)."""
        named = frozenset(k for k in params if not k.startswith("_"))
        self.calls.append((self.script, cmdlet, named))
        for value in params.values():
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, VM | Drive | Adapter):
                    self.vm_args.setdefault((self.script, cmdlet), set()).add(
                        v.id if isinstance(v, VM) else v.vm_id)
        self.check_parameters(cmdlet, named)
        method = getattr(self, "c_" + cmdlet.replace("-", "_").lower())
        action = params.pop("ErrorAction", "Stop")
        try:
            return method(**params)
        except HostError:
            if action != "SilentlyContinue":  # it hides every error, not only "not found"
                raise
            return [] if cmdlet.startswith("Get-") else None

    def check_parameters(self, cmdlet: str, named: frozenset[str]) -> None:
        pages = REFERENCE["cmdlets"].get(cmdlet, {})
        page = pages.get(self.version) or pages.get("powershell-5.1")
        if page is None:
            raise AssertionError(f"{cmdlet} is not in tests/data/powershell-reference.json")
        known = {p.lower() for s in page["sets"].values() for p in s}
        known |= {a.lower() for a in page["aliases"]} | COMMON
        for p in sorted(named):
            if p.lower() not in known or (self.version, cmdlet.lower(), p.lower()) in ABSENT:
                raise HostError(f"A parameter cannot be found that matches parameter name '{p}'.")

    def command_parameters(self, cmdlet: str) -> set[str]:
        """(Get-Command X).Parameters.Keys on this host."""
        self.calls.append((self.script, "Get-Command", frozenset()))
        pages = REFERENCE["cmdlets"][cmdlet]
        page = pages.get(self.version) or pages["powershell-5.1"]
        return {p for s in page["sets"].values() for p in s
                if (self.version, cmdlet.lower(), p.lower()) not in ABSENT}

    def check_twins(self) -> None:
        """Every cmdlet a twin called, with the parameters it passed, is called so in
        its script (a subset of one call's named parameters)."""
        static: dict[tuple[str, str], list[set[str]]] = {}
        for c in script_calls():
            static.setdefault((c.script[:-4], c.cmdlet.lower()), []).append(
                {p.lower() for p in c.parameters})
        wrong = []
        for script, cmdlet, named in set(self.calls):
            if not script:
                continue  # the model itself (a test preparing the host)
            options = static.get((script, cmdlet.lower()), [])
            if not any({p.lower() for p in named} <= o for o in options):
                wrong.append(f"{script}.ps1 has no call {cmdlet} {' '.join('-' + p for p in sorted(named))}")
        assert not wrong, "twins that do what their script does not:\n" + "\n".join(sorted(wrong))

    # --- helpers for tests -----------------------------------------------------------

    def add_vm(self, name: str, *, notes: str = "", disk: str | None = None, state: str = "Off",
               version: str | None = None, dvd: str | None = None, switch: str | None = "External",
               checkpoints: int = 0) -> VM:
        """A VM somebody else made (vmgenie's base VM, a person's VM)."""
        vm = VM(str(uuid.uuid4()), name, version or self.default_version,
                folder=f"D:\\Hyper-V\\{name}", state=state, notes=notes)
        disk = disk or f"D:\\Hyper-V\\{name}\\{name}.vhdx"
        self.mkdir(vm.folder)
        self.mkdir(str(PureWindowsPath(disk).parent))
        self.write(disk, b"vhdx:" + name.encode(), by_service=True)
        vm.drives.append(Drive("HardDiskDrive", disk, vm.id))
        for n in range(checkpoints):
            child = f"{disk[:-5]}_{str(uuid.uuid4()).upper()}.avhdx"  # Hyper-V's <disk>_<GUID>.avhdx
            self.write(child, f"delta {n}".encode(), by_service=True)
            vm.checkpoints.append(child)
            vm.drives[0].path = child
        if dvd:
            vm.drives.append(Drive("DvdDrive", dvd, vm.id))
        vm.adapters.append(Adapter(self.mac(), switch, vm.id))
        vm.boot_order = [vm.drives[0], vm.adapters[0]]
        vm.guest = Guest(installed=True)
        self.vms[vm.id] = vm
        return vm

    def vm_named(self, name: str) -> list[VM]:
        return [v for v in self.vms.values() if v.name == name]

    def guest_powers_off(self, vm: VM) -> None:
        """The guest shut itself down (the seal's poweroff)."""
        self.turn_off(vm)

    @staticmethod
    def mac() -> str:
        return "00155D" + uuid.uuid4().hex[:6].upper()

    # --- the file system -----------------------------------------------------------

    def exists(self, path: str) -> bool:
        return key(path) in self.files or key(path) in self.dirs

    def is_dir(self, path: str) -> bool:
        return key(path) in self.dirs

    def mkdir(self, path: str) -> None:
        p = PureWindowsPath(full(path))
        for parent in [*reversed(p.parents), p]:
            if key(str(parent)) in self.files:
                raise HostError(f"An item with the specified name {parent} already exists.")
            self.dirs.add(key(str(parent)))
            self.names.setdefault(key(str(parent)), str(parent))

    def write(self, path: str, data: bytes, *, by_service: bool = False, append: bool = False) -> None:
        parent = str(PureWindowsPath(full(path)).parent)
        if not self.is_dir(parent):
            raise HostError(f"Could not find a part of the path '{path}'.")
        if append and key(path) in self.files:
            self.files[key(path)].data += data
        else:
            self.files[key(path)] = File(data, by_service)
        self.names[key(path)] = full(path)

    def read(self, path: str) -> bytes:
        self.readable(path)
        self.in_use(path)
        if key(path) not in self.files:
            raise HostError(f"Could not find file '{path}'.")
        return self.files[key(path)].data

    def readable(self, path: str) -> None:
        if any(key(path) == d or key(path).startswith(d + "\\") for d in map(key, self.denied)):
            raise HostError(DENIED.format(path))

    def under(self, path: str) -> list[str]:
        """Every file and folder key inside ``path`` (not itself)."""
        k = key(path) + "\\"
        return [p for p in [*self.files, *self.dirs] if p.startswith(k)]

    def may_change(self, path: str) -> None:
        """Rename, move or remove ``path``: files of the Hyper-V service only where the
        account is an administrator or the folder grants it Modify by inheritance."""
        if self.admin or self.inherited_modify:
            return
        for p in [key(path), *self.under(path)]:
            f = self.files.get(p)
            if f is not None and f.by_service:
                raise HostError(DENIED.format(self.names.get(p, p)))

    def in_use(self, path: str) -> None:
        for p in [key(path), *self.under(path)]:
            if self.held.get(p, 0) > 0:
                self.held[p] -= 1
                raise HostError(IN_USE.format(self.names.get(p, p)))
            for vm in self.vms.values():
                if vm.state != "Off" and any(d.path and key(d.path) == p for d in vm.drives):
                    raise HostError(IN_USE.format(self.names.get(p, p)))
                if "Exporting" in vm.status and p.startswith(key(vm.folder)):
                    raise HostError(IN_USE.format(self.names.get(p, p)))

    def volume(self, path: str) -> str:
        k = key(path)
        return next((v for v in map(key, self.volumes) if k == v or k.startswith(v + "\\")), "")

    def remove(self, path: str, recurse: bool = False) -> None:
        if not self.exists(path):
            raise HostError(f"Cannot find path '{path}' because it does not exist.")
        self.may_change(path)
        self.in_use(path)
        inside = self.under(path)
        if inside and not recurse:
            raise HostError(f"The item at {path} has children and the Recurse parameter was not specified.")
        for p in [*inside, key(path)]:
            self.files.pop(p, None)
            self.dirs.discard(p)

    def move(self, source: str, dest: str) -> None:
        if self.exists(dest):
            raise HostError(f"Cannot create a file when that file already exists: '{dest}'.")
        if self.is_dir(source) and self.volume(source) != self.volume(dest):
            raise HostError("Source and destination path must have identical roots. Move will not "
                            "work across volumes.")
        self.may_change(source)
        self.in_use(source)
        src, dst = key(source), full(dest)
        for p in sorted([src, *self.under(source)]):
            target = full(dst + self.names.get(p, p)[len(src):]) if p != src else dst
            if p in self.dirs:
                self.dirs.discard(p)
                self.dirs.add(key(target))
            else:
                self.files[key(target)] = self.files.pop(p)
            self.names[key(target)] = target

    def copy(self, source: str, dest: str) -> None:
        if not self.exists(source):
            raise HostError(f"Cannot find path '{source}' because it does not exist.")
        src = key(source)
        if self.is_dir(source):
            self.mkdir(dest)
            for p in sorted(self.under(source)):
                target = full(full(dest) + self.names.get(p, p)[len(src):])
                if p in self.dirs:
                    self.mkdir(target)
                else:
                    self.write(target, self.files[p].data)
        else:
            self.write(dest, self.read(source))

    # --- power ---------------------------------------------------------------------

    def turn_off(self, vm: VM) -> None:
        vm.state = "Off"
        if self.held_after_off:
            for d in vm.disks():
                if d.path:
                    self.held[key(d.path)] = self.held_after_off

    def poll_guest(self, vm: VM) -> None:
        """The guest moves on each time the host looks at it (Get-VM, KVP)."""
        g = vm.guest
        if g is None or vm.state != "Running":
            return
        g.polls += 1
        first = vm.boot_order[0] if vm.boot_order else None
        booting_installer = (isinstance(first, Drive) and first.kind == "DvdDrive" and first.path
                             and not g.installed)
        if booting_installer and g.polls >= g.install_polls:
            g.installed, g.polls = True, 0
            for d in vm.disks():
                if d.path:
                    self.files[key(d.path)].data = INSTALLED_DISK
            self.turn_off(vm)  # the installer powers the VM off when done

    def kvp(self, vm: VM) -> list[str]:
        g = vm.guest
        if g is None or vm.state != "Running" or not g.installed or g.polls < g.address_after:
            return []
        return ["fe80::215:5dff:fe01:203", g.address]

    # --- Hyper-V cmdlets (Microsoft's reference) ---------------------------------------

    def c_get_vm(self, Name: str | None = None, Id: str | None = None, _pipe: Any = None) -> list[VM]:
        if self.permission_denied:
            raise HostError("You do not have the required permission to complete this task. "
                            f"Contact the administrator of the authorization policy for the "
                            f"computer '{self.computer}'.")
        if Id is not None:
            vm = self.vms.get(str(Id).lower())
            if vm is None:
                raise HostError(f"Hyper-V was unable to find a virtual machine with ID '{Id}'.")
            found = [vm]
        elif Name is not None:  # -Name takes wildcards
            found = [v for v in self.vms.values() if fnmatch.fnmatchcase(v.name.lower(), Name.lower())]
            if not found:
                raise HostError(f"Hyper-V was unable to find a virtual machine with name '{Name}'.")
        else:
            found = list(self.vms.values())
        for vm in found:
            self.poll_guest(vm)
            vm.shown_status = vm.status.pop(0) if vm.status else "Operating normally"
        return found

    def c_new_vm(self, Name: str, Generation: int = 1, MemoryStartupBytes: int = 512 << 20,
                 VHDPath: str | None = None, SwitchName: str | None = None, Path: str | None = None,
                 Version: str | None = None) -> VM:
        version = str(Version) if Version is not None else self.default_version
        if version not in self.supported:
            raise HostError(f"'{version}' is not a valid virtual machine configuration version on "
                            f"this host; Get-VMHostSupportedVersion lists {', '.join(self.supported)}.")
        if SwitchName is not None and SwitchName not in self.switches:
            raise HostError(f"Hyper-V was unable to find a virtual switch with name '{SwitchName}'.")
        if VHDPath is not None and key(VHDPath) not in self.files:
            raise HostError(f"The system cannot find the file '{VHDPath}'.")
        vm = VM(str(uuid.uuid4()), Name, version, folder=full(f"{Path or self.vhd_root}\\{Name}"),
                generation=Generation, memory_startup=MemoryStartupBytes,
                automatic_checkpoints=None if self.version == "winserver2016-ps" else True)
        if VHDPath:
            vm.drives.append(Drive("HardDiskDrive", VHDPath, vm.id))
        vm.adapters.append(Adapter(self.mac(), SwitchName, vm.id))
        vm.boot_order = [*vm.drives, *vm.adapters]
        vm.guest = self.guests.pop(0) if self.guests else Guest()
        # a disk New-VHD just made is empty (an installer fills it); any other holds an OS
        vm.guest.installed = bool(VHDPath) and self.files[key(VHDPath)].data != NEW_DISK
        self.mkdir(vm.folder)
        self.vms[vm.id] = vm
        return vm

    def c_set_vm(self, _pipe: VM | None = None, VM: VM | None = None, **settings: Any) -> None:
        vm = _pipe or VM
        assert vm is not None
        for name, value in settings.items():
            if name == "AutomaticCheckpointsEnabled":
                vm.automatic_checkpoints = bool(value)
            else:
                attr = {"Notes": "notes", "ProcessorCount": "processors",
                        "CheckpointType": "checkpoint_type",
                        "AutomaticStopAction": "automatic_stop_action",
                        "AutomaticStartAction": "automatic_start_action"}[name]
                setattr(vm, attr, value)

    def c_rename_vm(self, VM: VM | None = None, NewName: str = "", _pipe: Any = None) -> None:
        (VM or _pipe).name = NewName

    def c_set_vmmemory(self, _pipe: VM | None = None, VM: VM | None = None,
                       DynamicMemoryEnabled: bool = False, StartupBytes: int | None = None,
                       MinimumBytes: int | None = None, MaximumBytes: int | None = None) -> None:
        vm = _pipe or VM
        assert vm is not None
        vm.dynamic_memory = DynamicMemoryEnabled
        if StartupBytes is not None:
            vm.memory_startup = StartupBytes
        if MinimumBytes is not None:
            vm.memory_minimum = MinimumBytes
        if MaximumBytes is not None:
            vm.memory_maximum = MaximumBytes

    def c_set_vmprocessor(self, VM: VM, Count: int) -> None:
        VM.processors = Count

    def c_set_vmfirmware(self, _pipe: VM | None = None, VM: VM | None = None,
                         BootOrder: list[Any] | None = None, FirstBootDevice: Any = None,
                         EnableSecureBoot: str | None = None, SecureBootTemplate: str | None = None) -> None:
        vm = _pipe or VM
        assert vm is not None
        if vm.generation != 2:
            raise HostError("This cmdlet is supported only for Generation 2 virtual machines.")
        if BootOrder is not None:  # "Any existing boot entries not specified ... will be removed"
            vm.boot_order = list(BootOrder)
        if FirstBootDevice is not None:
            rest = [d for d in vm.boot_order if d is not FirstBootDevice]
            vm.boot_order = [FirstBootDevice, *rest]
        if EnableSecureBoot is not None:
            vm.secure_boot = EnableSecureBoot
        if SecureBootTemplate is not None:
            vm.template = SecureBootTemplate

    def c_get_vmfirmware(self, VM: VM) -> dict[str, Any]:
        return {"SecureBoot": VM.secure_boot, "SecureBootTemplate": VM.template,
                "BootOrder": list(VM.boot_order)}

    def c_get_vmsecurity(self, VM: VM) -> dict[str, bool]:
        return {"TpmEnabled": False, "Shielded": False}

    def c_add_vmdvddrive(self, VM: VM, Path: str | None = None, Passthru: bool = False) -> Drive | None:
        if Path is not None:
            self.readable(Path)
            if key(Path) not in self.files:
                raise HostError(f"Failed to add device 'Virtual CD/DVD Disk': the file '{Path}' "
                                "does not exist.")
        drive = Drive("DvdDrive", Path, VM.id)
        VM.drives.append(drive)
        VM.boot_order.append(drive)  # a new device gets a boot entry at the end
        return drive if Passthru else None

    def c_get_vmdvddrive(self, VM: VM) -> list[Drive]:
        return VM.dvds()

    def c_set_vmdvddrive(self, _pipe: Any = None, VMDvdDrive: Drive | None = None,
                         Path: str | None = None) -> None:
        for d in _pipe if isinstance(_pipe, list) else [_pipe or VMDvdDrive]:
            if Path is not None and key(Path) not in self.files:
                raise HostError(f"The file '{Path}' does not exist.")
            d.path = Path

    def c_get_vmharddiskdrive(self, VM: VM) -> list[Drive]:
        return VM.disks()

    def c_set_vmharddiskdrive(self, VMHardDiskDrive: Drive, Path: str) -> None:
        VMHardDiskDrive.path = Path

    def c_get_vmnetworkadapter(self, VM: VM) -> list[dict[str, Any]]:
        self.poll_guest(VM)
        return [{"Adapter": a, "MacAddress": a.mac, "SwitchName": a.switch,
                 "IPAddresses": self.kvp(VM)} for a in VM.adapters]

    def c_disconnect_vmnetworkadapter(self, VMNetworkAdapter: Adapter) -> None:
        VMNetworkAdapter.switch = None

    def c_connect_vmnetworkadapter(self, VMNetworkAdapter: Adapter, SwitchName: str) -> None:
        if SwitchName not in self.switches:
            raise HostError(f"Hyper-V was unable to find a virtual switch with name '{SwitchName}'.")
        VMNetworkAdapter.switch = SwitchName

    def c_get_vmintegrationservice(self, VM: VM) -> list[dict[str, Any]]:
        ok = VM.guest is not None and VM.guest.installed and VM.state == "Running" and VM.guest.services_ok
        return [{"Name": name, "Id": f"Microsoft:{VM.id.upper()}\\{guid}",
                 "Enabled": name != "Guest Service Interface",
                 "PrimaryOperationalStatus": ("Ok" if ok else "NoContact")
                 if name != "Guest Service Interface" else "",
                 "PrimaryStatusDescription": ("OK" if ok else "No Contact")
                 if name != "Guest Service Interface" else "",
                 "SecondaryStatusDescription": ""} for name, guid in SERVICE_GUIDS.items()]

    def c_get_vmsnapshot(self, VM: VM) -> list[str]:
        return list(VM.checkpoints)

    def c_remove_vmsnapshot(self, _pipe: list[str], Confirm: bool = True) -> None:
        vm = next(v for v in self.vms.values() if v.checkpoints and v.checkpoints[0] in _pipe)
        parent = vm.checkpoints[0].rsplit("_", 1)[0] + ".vhdx"
        for c in vm.checkpoints:
            self.files.pop(key(c), None)
        vm.checkpoints.clear()
        vm.disks()[0].path = parent  # merged (the VM shows Merging a moment longer)
        vm.status = ["Merging"]

    def c_get_vhd(self, Path: str) -> dict[str, Any]:
        if key(Path) not in self.files:
            raise HostError(f"The system cannot find the file '{Path}'.")
        if Path.lower().endswith(".avhdx"):  # a checkpoint's differencing disk
            return {"Path": Path, "VhdType": "Differencing", "ParentPath": Path.rsplit("_", 1)[0] + ".vhdx",
                    "Size": 250 << 30}
        return {"Path": Path, "VhdType": "Dynamic", "ParentPath": None, "Size": 250 << 30}

    def c_merge_vhd(self, Path: str, DestinationPath: str, Confirm: bool = True) -> None:
        raise AssertionError("the model has no differencing disks outside checkpoints")

    def c_new_vhd(self, Path: str, SizeBytes: int, Dynamic: bool = False,
                  BlockSizeBytes: int | None = None) -> None:
        if self.exists(Path):
            raise HostError(f"The file '{Path}' already exists.")
        self.write(Path, NEW_DISK, by_service=True)

    def c_mount_vhd(self, Path: str, ReadOnly: bool = False, NoDriveLetter: bool = False) -> None:
        self.in_use(Path)
        self.mounted = key(Path)

    def c_dismount_vhd(self, Path: str) -> None:
        self.mounted = ""

    def c_optimize_vhd(self, Path: str, Mode: str) -> None:
        self.in_use(Path)
        f = self.files[key(Path)]
        if not f.data.endswith(b":optimized"):
            f.data += b":optimized"
        # "Full" is Full only attached read-only (Optimize-VHD, example 1)
        attached = getattr(self, "mounted", "") == key(Path)
        self.optimized = Mode if (Mode != "Full" or attached) else "Prezeroed"

    def c_start_vm(self, VM: VM) -> None:
        if VM.state == "Running":
            return
        for d in VM.drives:
            if d.path and key(d.path) not in self.files:
                raise HostError(f"'{VM.name}' failed to start: the file '{d.path}' is missing.")
        VM.state = "Running"
        if VM.guest:
            VM.guest.polls = 0

    def c_stop_vm(self, VM: VM, Force: bool = False, TurnOff: bool = False, AsJob: bool = False) -> Any:
        if TurnOff or VM.guest is not None:  # the guest's shutdown service works in the model
            self.turn_off(VM)
        return {"job": VM.id} if AsJob else None

    def c_remove_job(self, Job: Any = None, Force: bool = False, _pipe: Any = None) -> None:
        pass

    def c_stop_job(self, _pipe: Any = None, PassThru: bool = False) -> Any:
        return _pipe

    def c_remove_vm(self, VM: VM, Force: bool = False) -> None:
        if VM.status and VM.status[0] in ("Exporting", "Merging"):
            raise HostError(f"The operation cannot be performed while the object '{VM.name}' is in "
                            "its current state (exporting or merging).")
        if VM.state != "Off":
            raise HostError(f"The virtual machine '{VM.name}' is running.")
        del self.vms[VM.id]  # its disks stay (Remove-VM removes the configuration only)

    def c_export_vm(self, VM: VM, Path: str) -> None:
        target = f"{full(Path)}\\{VM.name}"
        if self.exists(target):
            raise HostError(f"Failed to export: a folder named '{target}' already exists.")
        self.mkdir(f"{target}\\Virtual Machines")
        self.mkdir(f"{target}\\Virtual Hard Disks")
        self.mkdir(f"{target}\\Snapshots")
        config = {
            "Id": VM.id, "Name": VM.name, "Version": VM.version, "Generation": VM.generation,
            "Notes": VM.notes, "MemoryStartup": VM.memory_startup, "Processors": VM.processors,
            "SecureBoot": VM.secure_boot, "SecureBootTemplate": VM.template,
            "Disks": [PureWindowsPath(d.path).name for d in VM.disks() if d.path],
            "DvdPaths": [d.path for d in VM.dvds()],
            "Switches": [a.switch for a in VM.adapters],
            "CheckpointType": VM.checkpoint_type,
            "AutomaticStopAction": VM.automatic_stop_action,
        }
        ident = VM.id.upper()
        self.write(f"{target}\\Virtual Machines\\{ident}.vmcx",
                   b"model-vmcx:" + json.dumps(config).encode(), by_service=True)
        self.write(f"{target}\\Virtual Machines\\{ident}.vmgs", b"\0" * 16, by_service=True)
        self.write(f"{target}\\Virtual Machines\\{ident}.VMRS", b"\0" * 16, by_service=True)
        for d in VM.disks():
            if d.path:
                self.write(f"{target}\\Virtual Hard Disks\\{PureWindowsPath(d.path).name}",
                           self.read(d.path), by_service=True)

    def compatibility(self, vmcx: str, vhd_source: str | None, generate_new_id: bool) -> list[dict[str, Any]]:
        """What an import of ``vmcx`` on this host runs into (Compare-VM's report)."""
        data = self.read(vmcx)
        if not data.startswith(b"model-vmcx:"):
            raise HostError(f"'{vmcx}' is not a virtual machine configuration file.")
        config = json.loads(data[len(b"model-vmcx:"):])
        if config["Version"] not in self.supported:
            raise HostError(f"The virtual machine's configuration version {config['Version']} is not "
                            f"supported by this host (it supports {', '.join(self.supported)}).")
        found = []
        for switch in config["Switches"]:
            if switch and switch not in self.switches:
                found.append({"MessageId": 33012, "Message": f"Could not find Ethernet switch '{switch}'."})
        for path in config["DvdPaths"]:
            if path and key(path) not in self.files:
                found.append({"MessageId": 40010, "Message": f"Could not find the file '{path}'."})
        folder = vhd_source or str(PureWindowsPath(full(vmcx)).parent.parent / "Virtual Hard Disks")
        for disk in config["Disks"]:
            if key(f"{folder}\\{disk}") not in self.files:
                found.append({"MessageId": 40012,
                              "Message": f"Could not find the virtual hard disk '{disk}' in '{folder}'."})
        if not generate_new_id and config["Id"].lower() in self.vms:
            found.append({"MessageId": 40020, "Message": "A virtual machine with the same identifier "
                          "already exists on this host."})
        return found

    def c_compare_vm(self, Path: str, Copy: bool = False, GenerateNewId: bool = False,
                     VirtualMachinePath: str | None = None, VhdDestinationPath: str | None = None,
                     VhdSourcePath: str | None = None) -> dict[str, Any]:
        before = dict(self.vms)
        found = self.compatibility(Path, VhdSourcePath, GenerateNewId)
        assert self.vms == before  # Compare-VM registers nothing
        return {"Incompatibilities": found}

    def c_get_vmhostsupportedversion(self, Default: bool = False) -> Any:
        rows = [{"Name": f"Microsoft Windows {v}", "Version": v, "IsDefault": v == self.default_version}
                for v in self.supported]
        return next(r for r in rows if r["IsDefault"]) if Default else rows

    def c_get_vmhost(self) -> dict[str, str]:
        return {"ComputerName": self.computer, "VirtualHardDiskPath": self.vhd_root}

    def c_get_vmswitch(self) -> list[dict[str, str]]:
        return [{"Name": s} for s in self.switches]

    def c_get_netneighbor(self) -> list[dict[str, str]]:
        return []

    def c_get_module(self, ListAvailable: bool = False, Name: str = "") -> list[str]:
        return [Name] if Name == "Hyper-V" else []

    # --- the engine's cmdlets (Windows PowerShell 5.1) -------------------------------

    def c_test_path(self, LiteralPath: str, PathType: str | None = None) -> bool:
        try:
            self.readable(LiteralPath)
        except HostError:
            return False  # Test-Path says $false on access denied
        if PathType == "Leaf":
            return key(LiteralPath) in self.files
        if PathType == "Container":
            return self.is_dir(LiteralPath)
        return self.exists(LiteralPath)

    def c_get_item(self, LiteralPath: str) -> dict[str, Any]:
        self.readable(LiteralPath)
        if not self.exists(LiteralPath):
            raise HostError(f"Cannot find path '{LiteralPath}' because it does not exist.")
        f = self.files.get(key(LiteralPath))
        return {"FullName": self.names.get(key(LiteralPath), full(LiteralPath)),
                "Length": len(f.data) if f else None, "IsFile": f is not None}

    def c_get_filehash(self, LiteralPath: str, Algorithm: str) -> dict[str, str]:
        return {"Hash": hashlib.sha256(self.read(LiteralPath)).hexdigest().upper()}

    def c_new_item(self, ItemType: str, Path: str, Force: bool = False) -> None:
        self.mkdir(Path)

    def c_remove_item(self, LiteralPath: str, Recurse: bool = False, Force: bool = False) -> None:
        self.remove(LiteralPath, recurse=Recurse)

    def c_move_item(self, LiteralPath: str, Destination: str) -> None:
        self.move(LiteralPath, Destination)

    def c_rename_item(self, LiteralPath: str, NewName: str) -> None:
        self.move(LiteralPath, str(PureWindowsPath(full(LiteralPath)).parent / NewName))

    def c_copy_item(self, LiteralPath: str, Destination: str, Recurse: bool = False) -> None:
        self.copy(LiteralPath, Destination)

    def c_get_childitem(self, LiteralPath: str, Filter: str = "*", Recurse: bool = False,
                        File: bool = False, Directory: bool = False) -> list[dict[str, Any]]:
        base = key(LiteralPath)
        out = []
        for p in sorted(self.under(LiteralPath)):
            rest = p[len(base) + 1:]
            if not Recurse and "\\" in rest:
                continue
            is_dir = p in self.dirs
            if (File and is_dir) or (Directory and not is_dir):
                continue
            name = self.names.get(p, p)
            if not fnmatch.fnmatch(PureWindowsPath(name).name.lower(), Filter.lower()):
                continue
            out.append({"FullName": name, "Name": PureWindowsPath(name).name,
                        "Extension": PureWindowsPath(name).suffix,
                        "Length": 0 if is_dir else len(self.files[p].data)})
        return out

    def c_set_content(self, LiteralPath: str, Value: str, Encoding: str = "UTF8") -> None:
        self.write(LiteralPath, b"\xef\xbb\xbf" + Value.encode() + b"\r\n")

    def c_select_object(self, _pipe: Any, First: int) -> Any:
        items = _pipe if isinstance(_pipe, list) else [_pipe]
        return items[0] if items and First == 1 else None

    def c_join_path(self, _path: str, _child: str) -> str:
        """Join-Path A B (positional) puts one '\\' between the parts; it does not
        normalize the rest ('D:/x' stays)."""
        return _path.rstrip("\\/") + "\\" + _child.lstrip("\\/")

    def c_start_sleep(self, Seconds: float = 0, Milliseconds: float = 0) -> None:
        self.now += Seconds + Milliseconds / 1000

    def c_get_date(self) -> float:
        return self.now

    # --- Msvm_Keyboard through CIM -------------------------------------------------

    def c_get_ciminstance(self, Namespace: str, ClassName: str, Filter: str) -> Any:
        assert Namespace == "root\\virtualization\\v2" and ClassName == "Msvm_ComputerSystem"
        ident = Filter.split("'")[1].lower()
        return self.vms.get(ident)

    def c_get_cimassociatedinstance(self, InputObject: Any, ResultClassName: str) -> Any:
        return [{"keyboard": InputObject.id}] if InputObject is not None else []

    def c_invoke_cimmethod(self, InputObject: Any, MethodName: str,
                           Arguments: dict[str, Any]) -> dict[str, int]:
        if MethodName == "TypeText":
            text = Arguments["asciiText"]
            if len(text) > 512:
                raise HostError("Invalid parameter: asciiText is longer than 512 characters.")
            unpaced = bool(self.typed_at) and self.now - self.typed_at[-1] < 0.05
            if self.keyboard_drops and (unpaced or not self.typed_at) and len(text) > 32:
                text = text[:32]  # what the VM saw (hashicorp/packer#5291)
            self.typed.append(text)
            self.typed_at.append(self.now)
        else:
            self.typed.append(f"<{MethodName} {next(iter(Arguments.values()))}>")
            self.typed_at.append(self.now)
        return {"ReturnValue": self.keyboard_return}


@contextlib.contextmanager
def checked(host: HostModel) -> Iterator[HostModel]:
    """Use ``host`` and check its twins afterwards."""
    yield host
    host.check_twins()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
