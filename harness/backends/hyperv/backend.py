"""The Hyper-V backend: every host-side step of the GMI procedure, as PowerShell
scripts (``scripts/*.ps1``) run through a :class:`~.transport.PowerShell` transport.

What runs inside the guest is SSH, the same for every backend (the stages). Here:
Step 1 (create the VM as the wizard would, or adopt one, or start from a VHDX; install
unattended; find the guest's address), power on and off, Step 6 on the host (merge,
Optimize-VHD, Export-VM, flatten for vmgenie), the validation clone made the vmgenie
way, the host's view of the integration services, and clean-up of everything the run
created (tagged with the run in the VM's Notes and its folder's marker file).

Size: the backend's one class, its steps in the procedure's order; the PowerShell is
in ``scripts/``, the parsing in ``model.py``, the transport in ``transport.py``.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shlex
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING, Any

from harness.archive.format import SNAP_DIR, VHD_DIR
from harness.backends.base import VM, Backend, CloneShape, ExportedDisk, HostView
from harness.backends.hyperv import janitor
from harness.backends.hyperv.media import SHA256, InstallMedia, key_actions, media_from_settings
from harness.backends.hyperv.model import (
    CompactResult,
    ExportResult,
    FileHash,
    HostInfo,
    ImportCheck,
    IntegrationService,
    VmStatus,
    vm_record,
)
from harness.backends.hyperv.transport import TAG, PowerShell, build_name, host_join, make_transport
from harness.errors import ConfigError, GuestTimeoutError, HypervisorError
from harness.host.tools import sha256_file
from harness.settings import Settings

if TYPE_CHECKING:
    from harness.build import Build
    from harness.distro import Distro



# Every Hyper-V module cmdlet the scripts call, with the parameters they pass: the host
# preflight (host_info.ps1) asks the host's module for each, so that a host too old for
# them fails at the start, in one line. Parameters a script asks for itself first
# (Set-VM -AutomaticCheckpointsEnabled: not on Server 2016) are not here.
# tests/test_hyperv_cmdlets.py keeps this equal to what the scripts call.
SCRIPT_PARAMETERS: dict[str, tuple[str, ...]] = {
    "Add-VMDvdDrive": ("Passthru", "Path", "VM"),
    "Compare-VM": ("Copy", "GenerateNewId", "Path", "VhdDestinationPath", "VirtualMachinePath"),
    "Connect-VMNetworkAdapter": ("SwitchName", "VMNetworkAdapter"),
    "Disconnect-VMNetworkAdapter": ("VMNetworkAdapter",),
    "Dismount-VHD": ("Path",),
    "Export-VM": ("Path", "VM"),
    "Get-VHD": ("Path",),
    "Get-VM": ("Id",),
    "Get-VMDvdDrive": ("VM",),
    "Get-VMFirmware": ("VM",),
    "Get-VMHardDiskDrive": ("VM",),
    "Get-VMHost": (),
    "Get-VMHostSupportedVersion": ("Default",),
    "Get-VMIntegrationService": ("VM",),
    "Get-VMNetworkAdapter": ("VM",),
    "Get-VMSecurity": ("VM",),
    "Get-VMSnapshot": ("VM",),
    "Get-VMSwitch": (),
    "Merge-VHD": ("Confirm", "DestinationPath", "Path"),
    "Mount-VHD": ("NoDriveLetter", "Path", "ReadOnly"),
    "New-VHD": ("BlockSizeBytes", "Dynamic", "Path", "SizeBytes"),
    "New-VM": ("Generation", "MemoryStartupBytes", "Name", "Path", "SwitchName", "VHDPath", "Version"),
    "Optimize-VHD": ("Mode", "Path"),
    "Remove-VM": ("Force", "VM"),
    "Remove-VMSnapshot": ("Confirm",),
    "Rename-VM": ("NewName", "VM"),
    "Set-VM": ("AutomaticStartAction", "AutomaticStopAction", "CheckpointType", "Notes", "ProcessorCount"),
    "Set-VMDvdDrive": ("Path", "VMDvdDrive"),
    "Set-VMFirmware": ("BootOrder", "EnableSecureBoot", "FirstBootDevice", "SecureBootTemplate"),
    "Set-VMHardDiskDrive": ("Path", "VMHardDiskDrive"),
    "Set-VMMemory": ("DynamicMemoryEnabled", "MaximumBytes", "MinimumBytes", "StartupBytes"),
    "Start-VM": ("VM",),
    "Stop-VM": ("AsJob", "Force", "TurnOff", "VM"),
}

# Which hosts import a configuration version: Microsoft's "Supported VM configuration
# versions" tables (Upgrade virtual machine version in Hyper-V on Windows or Windows
# Server). 8.0 is the newest that every host with Secure Boot for Linux guests through
# the MicrosoftUEFICertificateAuthority template (Windows Server 2016 and newer, Windows
# 10 1607 and newer, Windows 11) supports: the default of --hyperv-vm-version.
IMPORTS_ON = {
    "8.0": "Windows Server 2016, 2019, 2022 and 2025, Windows 10 1607 and newer, Windows 11",
    "8.1": "Windows Server 2019, 2022 and 2025, Windows 10 1703 and newer, Windows 11",
    "8.2": "Windows Server 2019, 2022 and 2025, Windows 10 1709 and newer, Windows 11",
    "8.3": "Windows Server 2019, 2022 and 2025, Windows 10 1803 and newer, Windows 11",
    "9.0": "Windows Server 2019, 2022 and 2025, Windows 10 1809 and newer, Windows 11",
    "9.1": "Windows Server 2022 and 2025, Windows 10 1903 and newer, Windows 11",
    "9.2": "Windows Server 2022 and 2025, Windows 10 2004 and newer, Windows 11",
    "9.3": "Windows Server 2022 and 2025, Windows 11",
    "10.0": "Windows Server 2022 and 2025, Windows 11",
    "11.0": "Windows Server 2025, Windows 11 22H2 and newer",
    "12.0": "Windows Server 2025, Windows 11 24H2",
}
GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def pick_host(settings: Settings, worker: str = "") -> str:
    """The host of this xdist worker: gwN takes pool entry N modulo the pool's size."""
    pool = list(settings.hyperv_hosts) or ([settings.hyperv_host] if settings.hyperv_host else [])
    if not pool:
        return ""
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    return pool[index % len(pool)]


@dataclass
class Clock:
    """Time, replaceable in tests."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclass
class HostState:
    """What the backend made on the host for one build."""

    host: str
    ps: PowerShell
    tag: str
    notes: str
    folder: str = ""
    info: HostInfo | None = None
    sealed_vhdx: str = ""  # the exported VHDX on the host, once sealed
    export_root: str = ""


@dataclass
class HyperVVM(VM):
    """One VM on a Hyper-V host. ``owned`` host paths go with it on :meth:`destroy`; an
    adopted VM (``adopted``) is stopped but never removed."""

    name: str  # its name on the host (the run's own), for people; scripts use the Id
    ps: PowerShell
    tag: str
    clock: Clock
    id: str = ""  # Hyper-V's Id, once the VM exists
    owned: list[str] = field(default_factory=list)
    adopted: bool = False
    created: bool = False
    ssh_host: str = ""
    ssh_port: int = 22
    serial_log: Path | None = None
    address_source: str = ""
    address_timeout: float = 600
    warn: Callable[[str], None] = print

    def status(self) -> VmStatus:
        return VmStatus.parse(self.ps.run("vm_status", Id=self.id))

    def is_running(self) -> bool:
        return self.status().state == "Running"

    def start(self) -> None:
        """Power on; a VM that had an address gets it again (DHCP may hand out another)."""
        self.ps.run("start_vm", Id=self.id)
        if self.ssh_host and self.address_source != "static":
            self.ssh_host = ""
            self.wait_address(self.address_timeout)

    def shutdown(self, timeout: float = 120) -> None:
        result = self.ps.run("stop_vm", Id=self.id, TimeoutSeconds=int(timeout))
        if isinstance(result, dict) and result.get("Result") == "turned-off":
            self.warn(f"VM {self.name!r} did not shut down within {timeout:.0f} s: turned off")

    def wait_stopped(self, timeout: float) -> bool:
        """Wait on the host, a minute per call at most (a long install stays interruptible
        and no single remote call outlives the WinRM timeouts)."""
        waited = 0
        while True:
            chunk = max(1, min(60, int(timeout) - waited))
            result = self.ps.run("stop_vm", Id=self.id, TimeoutSeconds=chunk, WaitOnly=True)
            if isinstance(result, dict) and result.get("Result") in ("stopped", "already-off"):
                return True
            waited += chunk
            if waited >= timeout:
                return False

    def destroy(self) -> None:
        """Remove the VM (by its Id; by its run-unique name when the session broke before
        the Id came back) and what it owns. Only a VM carrying the run's tag is removed;
        an adopted one is stopped, never removed."""
        mine = self.created and not self.adopted
        if self.adopted and self.id:
            self.ps.run("stop_vm", Id=self.id, TimeoutSeconds=60)
        if mine or self.owned:
            self.ps.run("remove_items", VmIds=[self.id] if mine and self.id else [],
                        VmNames=[self.name] if mine and not self.id else [],
                        Paths=list(self.owned), Tag=self.tag)
            self.owned.clear()
            self.created = False

    def describe(self) -> str:
        login = f"SSH on {self.ssh_host}:{self.ssh_port}" if self.ssh_host else "no address"
        return f"VM {self.name!r} kept on Hyper-V host {self.ps.host}; {login}"

    def wait_address(self, timeout: float, static: str = "") -> str:
        """The guest's address: ``static`` when given, else KVP (link-local skipped), else
        the host's neighbour table by the adapter's MAC; bounded by ``timeout``."""
        if static:
            self.ssh_host, self.address_source = static, "static"
            return static
        deadline = self.clock.monotonic() + timeout
        status = self.status()
        while True:
            found = status.address()
            if found:
                self.ssh_host, self.address_source = found
                return self.ssh_host
            if self.clock.monotonic() >= deadline:
                raise GuestTimeoutError(
                    f"no address for VM {self.name!r} on {self.ps.host} after {timeout:.0f} s "
                    f"(state {status.state}, heartbeat {status.heartbeat}; KVP reported "
                    f"{[a for ad in status.adapters for a in ad.addresses] or 'nothing'}): "
                    "is hv-kvp-daemon installed and the switch connected to a DHCP network? "
                    "Or give --hyperv-guest-address")
            self.clock.sleep(5)
            status = self.status()


def catalogue_media(b: Build) -> InstallMedia:
    """The install media: ``--hyperv-install-iso`` (and its siblings) when given, else the
    distro's official ISO from the catalogue (cached, SHA-256 verified) with its answer
    files rendered onto their volume (:func:`harness.backends.hyperv.media.hyperv_media`)."""
    if b.settings.hyperv_install_iso or b.distro.iso is None:
        return media_from_settings(b)
    from harness.backends.hyperv.media import hyperv_media

    return hyperv_media(b)


class HyperVBackend(Backend):
    name = "hyperv"
    writes_vmcx = True  # Export-VM: the .vmcx beside the VHDX
    has_vmbus = True

    def host_label(self, build: Build) -> str:
        """The Hyper-V host this build's VMs ran on (this machine with --hyperv-local)."""
        if build.settings.hyperv_local:
            return socket.gethostname()
        return pick_host(build.settings, build.worker) or socket.gethostname()

    @classmethod
    def janitor(cls, settings: Settings, mode: str) -> int:
        return janitor.run(settings, mode)

    @classmethod
    def settings_problems(cls, settings: Settings, distros: Sequence[Distro],
                          janitor: bool = False) -> list[str]:
        """The host, its login, the switch, the base VM's key: every one missing in one
        line; the local files it reads."""
        s = settings
        local = s.hyperv_local
        missing = []
        if not local and not pick_host(s):
            missing.append("--hyperv-host NAME (or --hyperv-hosts A,B, or --hyperv-local on the "
                           "host itself)")
        if not local and s.hyperv_auth == "certificate":
            missing += [o for o, v in (("--hyperv-cert-pem PATH", s.hyperv_cert_pem),
                                       ("--hyperv-cert-key-pem PATH", s.hyperv_cert_key_pem)) if not v]
        elif not local and not s.hyperv_user:
            missing.append("--hyperv-user ACCOUNT (its password in GMI_HYPERV_PASSWORD or the "
                           "config file)")
        if not janitor:
            if not s.hyperv_switch:
                missing.append("--hyperv-switch NAME (Get-VMSwitch on the host lists them)")
            if (s.hyperv_base_vm or s.hyperv_base_vhdx) and not s.hyperv_base_key:
                missing.append("--hyperv-base-key PATH (the private key root accepts on that system)")
            if s.hyperv_install_iso and not s.hyperv_install_sha256:
                missing.append("--hyperv-install-sha256 HEX (the install ISO's SHA-256)")
        problems = [f"--backend=hyperv needs {', '.join(missing[:-1])}"
                    f"{' and ' if len(missing) > 1 else ''}{missing[-1]}"] if missing else []
        if not local and s.hyperv_auth == "certificate" and s.hyperv_plain_http:
            problems.append("--hyperv-auth=certificate works only over HTTPS; drop --hyperv-plain-http")
        if s.hyperv_base_vm and s.hyperv_base_vhdx:
            problems.append("give --hyperv-base-vm or --hyperv-base-vhdx, not both")
        if s.hyperv_install_sha256 and not SHA256.fullmatch(s.hyperv_install_sha256.lower()):
            problems.append(f"{s.where('hyperv_install_sha256')}: hyperv_install_sha256: "
                            f"{s.hyperv_install_sha256!r} is not a SHA-256 (64 hex digits)")
        for name in ("hyperv_ca_bundle", "hyperv_cert_pem", "hyperv_cert_key_pem", "hyperv_base_key"):
            value = getattr(s, name)
            if value and not (local and name != "hyperv_base_key") and \
                    not Path(value).expanduser().is_file():
                problems.append(f"{s.where(name)}: {name}: {value}: no such file")
        return problems

    @classmethod
    def installs_instead_of_the_iso(cls, settings: Settings, distro: Distro) -> str:
        s = settings
        return ("adopts --hyperv-base-vm" if s.hyperv_base_vm else
                "starts from --hyperv-base-vhdx" if s.hyperv_base_vhdx else
                f"installs from --hyperv-install-iso {s.hyperv_install_iso}" if s.hyperv_install_iso
                else "")

    def __init__(self, transport: Callable[[Settings, str], PowerShell] = make_transport,
                 clock: Clock | None = None) -> None:
        self.transport = transport
        self.clock = clock or Clock()
        # Where the install comes from (tests replace it).
        self.media: Callable[[Build], InstallMedia] = catalogue_media
        self._transports: dict[str, PowerShell] = {}
        self._states: dict[int, HostState] = {}  # by build: the host, its session, the tag
        self._infos: dict[str, HostInfo] = {}  # by host: read once (host_info.ps1)

    # --- the host and the run's folder -------------------------------------------

    def state(self, b: Build) -> HostState:
        st = self._states.get(id(b))
        if st is None:
            worker = b.worker
            host = "localhost" if b.settings.hyperv_local else pick_host(b.settings, worker)
            if host not in self._transports:
                self._transports[host] = self.transport(b.settings, host)
                atexit.register(self._transports[host].close)  # release the runspace pool
            tag = f"{TAG} run={b.run_id} worker={worker or 'main'}"
            notes = (f"{tag} distro={b.distro.name} client={socket.gethostname()} "
                     f"pid={os.getpid()} started={datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}")
            st = HostState(host, self._transports[host], tag, notes)
            self._states[id(b)] = st
            b.record["hyperv_host"] = host
        return st

    def check_host(self, b: Build) -> None:
        s = b.settings
        if not s.hyperv_local and not pick_host(s):
            raise ConfigError("--backend=hyperv needs a host: --hyperv-host NAME (or "
                              "--hyperv-hosts A,B, or --hyperv-local on the host itself)")
        if not s.hyperv_switch:
            raise ConfigError("--backend=hyperv needs a virtual switch: --hyperv-switch NAME "
                              "(Get-VMSwitch on the host lists them)")
        if s.hyperv_base_vm and s.hyperv_base_vhdx:
            raise ConfigError("give --hyperv-base-vm or --hyperv-base-vhdx, not both")
        if b.archive is None and not (s.hyperv_base_vm or s.hyperv_base_vhdx):
            self.media(b).check()
        if (s.hyperv_base_vm or s.hyperv_base_vhdx) and not s.hyperv_base_key:
            raise ConfigError("--hyperv-base-vm/--hyperv-base-vhdx need --hyperv-base-key: the "
                              "private key root accepts on that system")
        st = self.state(b)
        if st.host not in self._infos:  # the preflight, the versions: once per host
            self._infos[st.host] = HostInfo.parse(st.ps.run(
                "host_info", SwitchName=s.hyperv_switch, Root=s.hyperv_vhd_path or None,
                Required={k: list(v) for k, v in SCRIPT_PARAMETERS.items()}))
        st.info = info = self._infos[st.host]
        version = s.hyperv_vm_version
        if version not in info.supported_versions:
            raise ConfigError(f"--hyperv-vm-version {version}: {st.host} ({info.computer_name}) "
                              f"supports {', '.join(info.supported_versions)}")
        b.record["hyperv_host_name"] = info.computer_name
        b.record["hyperv_host_os"] = {"version": info.os_version, "build": info.os_build}
        b.record["hyperv_config_version"] = {
            "vm": version, "host_default": info.default_version,
            "host_supported": list(info.supported_versions),
            "imports_on": IMPORTS_ON.get(version, "the hosts whose Get-VMHostSupportedVersion lists it")}

    def folder(self, b: Build) -> str:
        """The run's folder on the host (created on first use, with its marker)."""
        st = self.state(b)
        if not st.folder:
            assert st.info is not None, "check_host runs first"
            root = b.settings.hyperv_vhd_path or st.info.vhd_path
            worker = b.worker or "main"
            marker = json.dumps({"notes": st.notes, "run": b.run_id, "worker": worker,
                                 "client": socket.gethostname(), "pid": os.getpid()})
            reply = st.ps.run("new_run_folder", Root=root,
                              Name=f"{TAG}-{b.run_id}-{worker}-{b.distro.name}", Marker=marker)
            st.folder = str(reply["Path"])
        return st.folder

    def _host_file(self, b: Build, vm: HyperVVM, path: str, what: str) -> str:
        """A local file is uploaded into the run's folder (and owned by ``vm``); anything
        else is taken as a path on the host."""
        local = Path(path).expanduser()
        if not local.is_file():
            return path
        target = host_join(self.folder(b), local.name)
        with b.step(f"provision: upload the {what} ({local.stat().st_size >> 20} MiB)"):
            self.state(b).ps.put(local, target)
        vm.owned.append(target)
        return target

    def _verify_iso(self, b: Build, path: str, sha256: str) -> None:
        got = FileHash.parse(self.state(b).ps.run("file_hash", Path=path))
        if got.sha256 != sha256.lower():
            raise HypervisorError(f"the install ISO {path} on {self.state(b).host} has SHA-256 "
                                  f"{got.sha256}, expected {sha256.lower()}: download it again")

    def _new_vm_handle(self, b: Build, name: str, **kw: Any) -> HyperVVM:
        st = self.state(b)

        def warn(message: str) -> None:
            b.log.warning("%s", message)
            b.progress(f"[{b.label}] WARNING: {message}")

        vm = HyperVVM(name=name, ps=st.ps, tag=st.tag, clock=self.clock, warn=warn,
                      address_timeout=b.settings.boot_timeout, **kw)
        b.vms.append(vm)  # before anything exists on the host: teardown knows it
        return vm

    # --- Step 1 -------------------------------------------------------------------

    def provision(self, b: Build) -> VM:
        s, names, hv = b.settings, b.distro.vmgenie, b.distro.hyperv
        if s.hyperv_base_vm:
            vm = self._adopt(b)
        else:
            vm = self._new_vm_handle(b, build_name(names.vm_name, b.run_id, b.worker))
            vm.owned.append(self.folder(b))
            media = None if s.hyperv_base_vhdx else self.media(b)
            iso = answer = ""
            if media is not None:
                iso = self._host_file(b, vm, media.iso, "install ISO")
                with b.step("provision: verify the install ISO's SHA-256"):
                    self._verify_iso(b, iso, media.sha256)
                if media.answer_iso:
                    answer = self._host_file(b, vm, media.answer_iso, "answer media")
            with b.step("provision: create the Generation 2 VM"):
                vm.created = True
                reply = self.state(b).ps.run(
                    "new_vm", Name=vm.name, DiskName=names.vm_name, Folder=self.folder(b),
                    SwitchName=s.hyperv_switch, Version=s.hyperv_vm_version,
                    SizeBytes=hv.disk_gb * 1024**3,
                    BaseVhdx=s.hyperv_base_vhdx or None, MemoryMB=hv.memory_mb,
                    DynamicMemory=hv.dynamic_memory, ProcessorCount=s.vm_cpus,
                    SecureBoot=hv.secure_boot, SecureBootTemplate=hv.secure_boot_template,
                    BlockSizeMiB=hv.vhdx_block_size_mib, InstallIso=iso or None,
                    AnswerIso=answer or None, Notes=self.state(b).notes)
                vm.id = str(reply["Id"])
                b.record["hyperv_vm"] = vm_record(reply)
            if media is not None:
                b.record["installed_by"] = (f"unattended install from {PureWindowsPath(iso).name} "
                                            f"(sha256 {media.sha256.lower()}) on Hyper-V")
                self._install(b, vm, media)
            else:
                b.record["installed_by"] = f"a copy of {s.hyperv_base_vhdx} on Hyper-V"
                vm.start()
        with b.step("provision: wait for the guest's address"):
            vm.wait_address(s.boot_timeout, s.hyperv_guest_address)
        b.record["hyperv_address_source"] = vm.address_source
        if s.hyperv_base_key:
            authorize_build_key(b, vm)
        return vm

    def _install(self, b: Build, vm: HyperVVM, media: InstallMedia) -> None:
        """Power on, type the boot command if any, wait for the installer to power off,
        then boot from the disk with the DVD drives empty."""
        with b.step("provision: start the installer"):
            vm.ps.run("start_vm", Id=vm.id, BootWaitMs=int(media.boot_wait * 1000),
                      Keys=key_actions(media.boot_command) or None)
        if media.powers_off:
            with b.step("provision: unattended install (until the VM powers off)"):
                limit = b.settings.command_timeout
                if not vm.wait_stopped(limit):
                    status = vm.status()
                    raise GuestTimeoutError(
                        f"the unattended install of {vm.name!r} did not power off within "
                        f"{limit} s (state {status.state}, heartbeat {status.heartbeat}); "
                        "watch it in Hyper-V Manager, or raise --command-timeout")
            vm.ps.run("finish_install", Id=vm.id)
            vm.start()

    def _adopt(self, b: Build) -> HyperVVM:
        """``--hyperv-base-vm NAME|ID``: the person's VM, by its Id or a name only it has
        (a host that runs vmgenie has a base VM named after the GMI; two of a name are
        refused with their Ids)."""
        given = b.settings.hyperv_base_vm
        vm = self._new_vm_handle(b, given, adopted=True)
        with b.step("provision: adopt the existing VM"):
            reply = vm.ps.run("adopt_vm", DiskName=b.distro.vmgenie.vm_name,
                              MaxVersion=b.settings.hyperv_vm_version,
                              **({"Id": given} if GUID.match(given) else {"Name": given}))
        vm.id, vm.name = str(reply["Id"]), str(reply.get("Name") or given)
        checkpoints = [str(c) for c in reply.get("Checkpoints") or []]
        b.record["hyperv_vm"] = {"Id": vm.id, "Name": vm.name, "adopted": True}
        b.record["hyperv_adopted"] = {"Id": vm.id, "Name": vm.name, "checkpoints": checkpoints,
                                      "dvd_paths": [str(d) for d in reply.get("DvdPaths") or [] if d]}
        if checkpoints:
            vm.warn(f"the adopted VM {vm.name!r} has {len(checkpoints)} checkpoints "
                    f"({', '.join(checkpoints)}): Step 6 merges them into its disk")
        b.record["installed_by"] = f"by hand (adopted Hyper-V VM {vm.name!r}, Id {vm.id})"
        if reply.get("State") != "Running":
            vm.start()
        return vm

    # --- Step 6 and 7 on the host ---------------------------------------------------

    def export_disk(self, b: Build, vhdx: Path) -> ExportedDisk:
        assert isinstance(b.vm, HyperVVM)
        vm, st = b.vm, self.state(b)
        if not vm.wait_stopped(5):
            vm.shutdown(120)
        with b.step("seal: merge checkpoints and Optimize-VHD"):
            compact = CompactResult.parse(st.ps.run("compact_disk", Id=vm.id))
        if compact.optimize_mode != "Full":
            b.log.info("Optimize-VHD ran as %s: the VHDX could not be attached read-only (%s)",
                       compact.optimize_mode, compact.mount_error or "no reason given")
        kept = b.settings.hyperv_export_dir
        # A folder of the user's gets its own subfolder, replaced only with --force.
        export_root = (host_join(kept, b.distro.vmgenie.stem) if kept
                       else host_join(self.folder(b), "gmi"))
        with b.step("seal: Export-VM and flatten for vmgenie"):
            exported = ExportResult.parse(st.ps.run(
                "export_vm", Id=vm.id, ExportName=b.distro.vmgenie.vm_name,
                Staging=host_join(self.folder(b), "export"), Destination=export_root,
                Replace=bool(b.settings.force or not kept)))
        st.sealed_vhdx, st.export_root = exported.vhdx, exported.root
        self.import_check(b, exported)
        tree = b.workdir / "hyperv-export"
        with b.step("seal: fetch the export"):
            self._fetch(b, exported, vhdx, tree)
        b.record["hyperv_export"] = {"host_path": exported.root,
                                     "kept_on_host": bool(b.settings.hyperv_export_dir),
                                     "merged": list(compact.merged),
                                     "checkpoints_merged": list(compact.checkpoints),
                                     "optimize_mode": compact.optimize_mode,
                                     "media_left_out": list(exported.emptied_media)}
        return ExportedDisk({"build_disk_allocated": compact.bytes_before,
                             "vhdx_bytes": compact.bytes_after, "virtual_size": compact.virtual_size},
                            vm_tree=tree)

    def import_check(self, b: Build, exported: ExportResult) -> ImportCheck:
        """Right after Export-VM: would the export import, as vmgenie imports it?
        Compare-VM on the flattened tree's .vmcx into a scratch folder (it registers
        nothing); the report goes into the build record, where the checklist's item
        reads it (checks/test_checklist.py) and the gate needs it passed."""
        st = self.state(b)
        with b.step("seal: Compare-VM (would the export import?)"):
            report = ImportCheck.parse(st.ps.run(
                "import_check", Vmcx=host_join(exported.root, *exported.vmcx.replace("\\", "/").split("/")),
                Scratch=host_join(self.folder(b), "import-check")))
        b.record["hyperv_import_check"] = {"vmcx": report.vmcx, "host": st.host,
                                           "incompatibilities": list(report.incompatibilities)}
        if report.incompatibilities:
            b.log.warning("Compare-VM on %s: %s", report.vmcx,
                          "; ".join(f"{i['MessageId']}: {i['Message']}" for i in report.incompatibilities))
        return report

    def _fetch(self, b: Build, exported: ExportResult, vhdx: Path, tree: Path) -> None:
        """The VHDX to ``vhdx`` (checked against the host's SHA-256), the rest of the
        export (``Virtual Machines/``, ``Snapshots/``) under ``tree``."""
        ps = self.state(b).ps
        (tree / SNAP_DIR).mkdir(parents=True, exist_ok=True)
        for f in exported.files:
            remote = host_join(exported.root, *f.parts)
            if f.parts[0] == VHD_DIR:
                if f.parts[-1] != f"{b.distro.vmgenie.vm_name}.vhdx":
                    raise HypervisorError(f"the export holds an unexpected disk {f.path}")
                ps.get(remote, vhdx)
            else:
                ps.get(remote, tree.joinpath(*f.parts))
        got = sha256_file(vhdx)
        if got != exported.vhdx_sha256:
            raise HypervisorError(f"the fetched VHDX's SHA-256 {got} differs from the host's "
                                  f"{exported.vhdx_sha256}: the copy broke; run again")

    # --- promote ------------------------------------------------------------------

    def promote(self, b: Build) -> None:
        """``--promote``: the archive's disk in a new Gen2 VM, exported unbooted
        (:mod:`harness.backends.hyperv.promote`)."""
        from harness.backends.hyperv.promote import promote_disk

        promote_disk(self, b)

    # --- the validation clone --------------------------------------------------------

    def clone(self, b: Build, vhdx: Path, seed_iso: Path, name: str) -> VM:
        st, s = self.state(b), b.settings
        shape = CloneShape.of(s)
        vm = self._new_vm_handle(b, f"gmi-{name} {b.distro.name} {b.run_id}")
        source = st.sealed_vhdx
        if not source:  # validating an archive: its disk goes to the host first
            source = self._host_file(b, vm, str(vhdx), "disk to validate")
        seed = host_join(self.folder(b), f"{name}-seed.iso")
        st.ps.put(seed_iso, seed)
        vm.owned += [seed, host_join(self.folder(b), f"{vm.name}.vhdx")]
        vm.created = True
        reply = st.ps.run("new_clone_vm", Name=vm.name, Folder=self.folder(b), SourceVhdx=source,
                          SeedIso=seed, SwitchName=s.hyperv_switch, MemoryMB=shape.memory_mb,
                          ProcessorCount=shape.cpus, SecureBoot=shape.secure_boot,
                          SecureBootTemplate=shape.secure_boot_template, Notes=st.notes)
        vm.id = str(reply["Id"])
        b.record["clone_shape"] = shape.record()
        vm.wait_address(s.boot_timeout)
        return vm

    def host_view(self, build: Build, vm: VM) -> HostView:
        assert isinstance(vm, HyperVVM)
        return HyperVHostView(self, vm)

    def integration_services(self, vm: VM) -> list[IntegrationService]:
        """The host's view (Get-VMIntegrationService) of ``vm``'s integration services."""
        assert isinstance(vm, HyperVVM)
        return IntegrationService.parse_all(vm.ps.run("integration_services", Id=vm.id))

    def kvp_addresses(self, vm: VM) -> list[str]:
        """The addresses ``vm``'s KVP daemon reports to the host (link-local skipped)."""
        assert isinstance(vm, HyperVVM)
        return vm.status().kvp_addresses()


@dataclass
class HyperVHostView(HostView):
    """Hyper-V's view of a running VM: KVP's addresses, Get-VMIntegrationService."""

    backend: HyperVBackend
    vm: HyperVVM

    def reported_addresses(self) -> list[str]:
        return self.backend.kvp_addresses(self.vm)

    def integration_service_problems(self) -> list[str]:
        return services_problems(self.backend.integration_services(self.vm))


# What the procedure's checklist asks of the host's integration services (Guest Service
# Interface only when it is enabled: it is off by default on Hyper-V).
REQUIRED_SERVICES = ("Heartbeat", "Key-Value Pair Exchange", "VSS", "Shutdown",
                     "Time Synchronization")


def services_problems(services: list[IntegrationService]) -> list[str]:
    """What is wrong with the host's view of a clone's integration services (known by
    the GUIDs in their Ids, so a German or French host's names do not matter)."""
    by_name = {s.name: s for s in services}
    problems = []
    for name in REQUIRED_SERVICES:
        svc = by_name.get(name)
        if svc is None:
            problems.append(f"{name}: not reported")
        elif not svc.enabled or not svc.ok:
            problems.append(f"{name}: enabled={svc.enabled} status={svc.status or '?'}")
    gsi = by_name.get("Guest Service Interface")
    if gsi is not None and gsi.enabled and not gsi.ok:
        problems.append(f"Guest Service Interface: status={gsi.status or '?'}")
    return problems


def authorize_build_key(b: Build, vm: HyperVVM) -> None:
    """On an adopted VM or a base VHDX: log in as root with the person's key once and
    add the build's key, so the stages run as on a fresh install."""
    import paramiko

    from harness.ssh import Guest, KeyPair

    assert b.creds is not None
    path = Path(b.settings.hyperv_base_key).expanduser()
    try:
        pkey = paramiko.Ed25519Key.from_private_key_file(str(path))
    except (OSError, paramiko.SSHException) as exc:
        raise ConfigError(f"--hyperv-base-key {path}: not a readable OpenSSH ed25519 key "
                          f"({exc})") from None
    person = KeyPair(path.read_text(), f"{pkey.get_name()} {pkey.get_base64()}")
    guest = Guest(vm.ssh_host, vm.ssh_port, "root", person, logger=b.log)
    try:
        guest.wait(b.settings.boot_timeout, "root SSH with --hyperv-base-key")
        guest.run("install -d -m 700 /root/.ssh && echo "
                  f"{shlex.quote(b.creds.key.public_openssh)} >> /root/.ssh/authorized_keys",
                  what="authorize the build key")
    finally:
        guest.close()
