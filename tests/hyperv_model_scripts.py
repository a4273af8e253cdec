"""The Python twin of each Hyper-V script (``harness/backends/hyperv/scripts/*.ps1``), run
by the MODEL of a Hyper-V host (tests/hyperv_model.py): not a real host, and not the
scripts themselves (no PowerShell here).

Each twin follows its script line by line: the same cmdlets with the same named
parameters, in the same order, the same checks and the same JSON printed.
``HostModel.check_twins`` holds every twin to its script's calls (a cmdlet or a
parameter the script does not pass fails the test); the logic between the calls is
kept in step by hand, and a change to a script changes its twin in the same commit.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import PureWindowsPath
from typing import Any

from hyperv_model import VM, HostError, HostModel, full, key

Twin = Callable[[HostModel, dict[str, Any]], Any]
TWINS: dict[str, Twin] = {}


def twin(fn: Twin) -> Twin:
    TWINS[fn.__name__] = fn
    return fn


def by_id(h: HostModel, ident: str) -> VM:
    """``Get-VM -Id $Id``: one VM, or Hyper-V's error."""
    return h.cmd("Get-VM", Id=ident)[0]


def in_use(h: HostModel, path: str) -> bool:
    """[IO.File]::Open(path, 'Open', 'Read', 'None'): an IOException when in use."""
    try:
        h.in_use(path)
        return False
    except HostError:
        return True


def retried(h: HostModel, action: Callable[[], Any], tries: int = 5) -> Any:
    """5 tries, 2 s apart (the scripts' retry loops)."""
    for attempt in range(1, tries + 1):
        try:
            return action()
        except HostError:
            if attempt >= tries:
                raise
            h.cmd("Start-Sleep", Seconds=2)


def guard_automatic_checkpoints(h: HostModel, vm: VM) -> None:
    if "AutomaticCheckpointsEnabled" in h.command_parameters("Set-VM"):
        h.cmd("Set-VM", _pipe=vm, AutomaticCheckpointsEnabled=False)


def secure_boot(h: HostModel, vm: VM, p: dict[str, Any]) -> None:
    """new_vm's and new_clone_vm's Secure Boot lines (the template, or off)."""
    if p.get("SecureBoot", True):
        h.cmd("Set-VMFirmware", _pipe=vm, EnableSecureBoot="On",
              SecureBootTemplate=p.get("SecureBootTemplate", "MicrosoftUEFICertificateAuthority"))
    else:
        h.cmd("Set-VMFirmware", _pipe=vm, EnableSecureBoot="Off")


def join(h: HostModel, path: str, child: str) -> str:
    """Join-Path with positional arguments, as the scripts write it."""
    return str(h.cmd("Join-Path", _path=path, _child=child))


def notes_of(vm: VM) -> str:
    return vm.notes


def read_all_text(h: HostModel, path: str) -> str:
    """[IO.File]::ReadAllText: the text, a UTF-8 byte order mark dropped."""
    data = h.read(path)
    return data[3:].decode() if data.startswith(b"\xef\xbb\xbf") else data.decode()


@twin
def host_info(h: HostModel, p: dict[str, Any]) -> Any:
    if not h.cmd("Get-Module", ListAvailable=True, Name="Hyper-V"):
        raise HostError("the Hyper-V PowerShell module is not installed on this host "
                        "(Install-WindowsFeature Hyper-V-PowerShell)")
    missing = []
    for name, params in (p.get("Required") or {}).items():
        known = h.command_parameters(name)
        missing += [f"{name} -{x}" for x in params if x not in known]
    if missing:
        raise HostError(f"this host's Hyper-V module (Windows {h.version}) lacks what the scripts use: "
                        f"{', '.join(missing)}; the harness needs Windows Server 2016 / Windows 10 "
                        "1607 or newer")
    vm_host = h.cmd("Get-VMHost")
    switches = [s["Name"] for s in h.cmd("Get-VMSwitch")]
    name = p.get("SwitchName", "")
    if name and name not in switches:
        raise HostError(f"no virtual switch named '{name}' on {vm_host['ComputerName']}; "
                        f"switches: {', '.join(switches)}")
    versions = [v["Version"] for v in h.cmd("Get-VMHostSupportedVersion")]
    default = h.cmd("Get-VMHostSupportedVersion", Default=True)["Version"]
    root = p.get("Root") or vm_host["VirtualHardDiskPath"]
    if not h.cmd("Test-Path", LiteralPath=root, PathType="Container"):
        raise HostError(f"the VHD folder {root} does not exist on {vm_host['ComputerName']} "
                        "(--hyperv-vhd-path, else the host's VirtualHardDiskPath)")
    account = "CORP\\gmi-builder"
    probe = join(h, root, "gmi-preflight-0a1b2c3d")
    renamed = probe + "-renamed"
    try:
        h.cmd("New-Item", ItemType="Directory", Path=probe)
        h.cmd("New-VHD", Path=join(h, probe, "probe.vhdx"), SizeBytes=3 << 20, Dynamic=True)
        h.cmd("Rename-Item", LiteralPath=probe, NewName=PureWindowsPath(renamed).name)
        h.cmd("Remove-Item", LiteralPath=renamed, Recurse=True, Force=True)
    except HostError as exc:
        for left in (probe, renamed):
            if h.cmd("Test-Path", LiteralPath=left):
                h.cmd("Remove-Item", LiteralPath=left, Recurse=True, Force=True,
                      ErrorAction="SilentlyContinue")
        raise HostError(f"{account} cannot create, rename and delete under {root}, a disk Hyper-V "
                        f"wrote included ({exc}): grant it Modify there, inherited: icacls "
                        f"\"{root}\" /grant \"{account}:(OI)(CI)M\"") from None
    from hyperv_model import OS_BUILDS

    return {"ComputerName": vm_host["ComputerName"], "VirtualHardDiskPath": vm_host["VirtualHardDiskPath"],
            "Switches": switches, "PowerShellVersion": "5.1.20348.2849",
            "OsVersion": f"10.0.{OS_BUILDS[h.version]}.0", "OsBuild": OS_BUILDS[h.version],
            "SupportedVersions": versions, "DefaultVersion": default, "Account": account}


@twin
def new_run_folder(h: HostModel, p: dict[str, Any]) -> Any:
    path = full(join(h, p["Root"], p["Name"]))
    h.cmd("New-Item", ItemType="Directory", Path=path, Force=True)
    h.cmd("Set-Content", LiteralPath=join(h, path, "gmi-run.json"), Value=p["Marker"], Encoding="UTF8")
    return {"Path": path}


@twin
def file_hash(h: HostModel, p: dict[str, Any]) -> Any:
    path = p["Path"]
    item = h.cmd("Get-Item", LiteralPath=path)
    if not item["IsFile"]:
        raise HostError(f"{path} on this host is a folder, not a file")
    digest = h.cmd("Get-FileHash", LiteralPath=path, Algorithm="SHA256")
    return {"Path": item["FullName"], "Length": item["Length"], "Sha256": digest["Hash"].lower()}


@twin
def new_vm(h: HostModel, p: dict[str, Any]) -> Any:
    name, folder = p["Name"], p["Folder"]
    vhdx = full(join(h, folder, f"{p['DiskName']}.vhdx"))
    use = p.get("UseVhdx", "")
    if use:
        if full(use) != vhdx:
            raise HostError(f"-UseVhdx must be '{vhdx}' (the disk named after the GMI), not '{use}'")
        if not h.cmd("Test-Path", LiteralPath=use, PathType="Leaf"):
            raise HostError(f"no disk at {use}")
    elif p.get("BaseVhdx"):
        h.cmd("Copy-Item", LiteralPath=p["BaseVhdx"], Destination=vhdx)
    else:
        args = {"Path": vhdx, "SizeBytes": p.get("SizeBytes", 0), "Dynamic": True}
        if p.get("BlockSizeMiB", 0) > 0:
            args["BlockSizeBytes"] = p["BlockSizeMiB"] << 20
        h.cmd("New-VHD", **args)
    memory = p.get("MemoryMB", 4096) << 20
    vm = h.cmd("New-VM", Name=name, Generation=2, Version=p["Version"], MemoryStartupBytes=memory,
               VHDPath=vhdx, SwitchName=p["SwitchName"], Path=folder)
    h.cmd("Set-VM", _pipe=vm, Notes=p["Notes"])
    try:
        h.cmd("Set-VM", _pipe=vm, ProcessorCount=p.get("ProcessorCount", 2), CheckpointType="Disabled",
              AutomaticStopAction="ShutDown", AutomaticStartAction="Nothing")
        guard_automatic_checkpoints(h, vm)
        if p.get("DynamicMemory", True):
            h.cmd("Set-VMMemory", _pipe=vm, DynamicMemoryEnabled=True, StartupBytes=memory,
                  MinimumBytes=512 << 20, MaximumBytes=1 << 40)
        else:
            h.cmd("Set-VMMemory", _pipe=vm, DynamicMemoryEnabled=False, StartupBytes=memory)
        secure_boot(h, vm, p)
        security = h.cmd("Get-VMSecurity", VM=vm)
        if security["TpmEnabled"] or security["Shielded"]:
            raise HostError(f"the new VM '{name}' has a TPM or shielding enabled by host policy; turn it off")
        disk = h.cmd("Get-VMHardDiskDrive", VM=vm)
        boot: list[Any] = []
        if p.get("InstallIso"):
            boot.append(h.cmd("Add-VMDvdDrive", VM=vm, Path=p["InstallIso"], Passthru=True))
        if p.get("AnswerIso"):
            h.cmd("Add-VMDvdDrive", VM=vm, Path=p["AnswerIso"])
        boot += disk
        h.cmd("Set-VMFirmware", _pipe=vm, BootOrder=boot)
    except HostError:
        h.cmd("Stop-VM", VM=vm, TurnOff=True, Force=True, ErrorAction="SilentlyContinue")
        h.cmd("Remove-VM", VM=vm, Force=True, ErrorAction="SilentlyContinue")
        raise
    vm = by_id(h, vm.id)
    firmware = h.cmd("Get-VMFirmware", VM=vm)
    return {"Name": vm.name, "Id": vm.id, "Version": vm.version, "Generation": vm.generation,
            "State": vm.state, "Vhdx": vhdx, "SecureBoot": firmware["SecureBoot"],
            "SecureBootTemplate": firmware["SecureBootTemplate"], "CheckpointType": vm.checkpoint_type,
            "AutomaticStopAction": vm.automatic_stop_action, "DynamicMemoryEnabled": vm.dynamic_memory,
            "MemoryStartup": vm.memory_startup, "MemoryMaximum": vm.memory_maximum,
            "BootOrder": [d.boot_type for d in firmware["BootOrder"]]}


@twin
def start_vm(h: HostModel, p: dict[str, Any]) -> Any:
    vm = by_id(h, p["Id"])
    if vm.state != "Running":
        h.cmd("Start-VM", VM=vm)
    typed = 0
    keys = p.get("Keys") or []
    if keys:
        h.cmd("Start-Sleep", Milliseconds=p.get("BootWaitMs", 0))
        system = h.cmd("Get-CimInstance", Namespace="root\\virtualization\\v2",
                       ClassName="Msvm_ComputerSystem", Filter=f"Name = '{vm.id.upper()}'")
        found = h.cmd("Get-CimAssociatedInstance", InputObject=system, ResultClassName="Msvm_Keyboard")
        keyboard = h.cmd("Select-Object", _pipe=found, First=1)
        if not keyboard:
            raise HostError(f"VM '{vm.name}' has no Msvm_Keyboard to type the boot command with")
        def send_keys(method: str, arguments: dict[str, Any]) -> None:
            result = h.cmd("Invoke-CimMethod", InputObject=keyboard, MethodName=method, Arguments=arguments)
            if result["ReturnValue"] not in (0, 4096):
                raise HostError(f"Msvm_Keyboard.{method} returned {result['ReturnValue']} on VM '{vm.name}'")
            h.cmd("Start-Sleep", Milliseconds=100)

        for k in keys:
            kind = k["Kind"]
            if kind == "wait":
                h.cmd("Start-Sleep", Milliseconds=int(k["Value"]))
                continue
            if kind == "text":
                text = k["Value"]
                if len(text) > 512:
                    raise HostError(f"a text action of {len(text)} characters; "
                                    "Msvm_Keyboard.TypeText takes at most 512 (split it)")
                for i in range(0, len(text), 32):
                    send_keys("TypeText", {"asciiText": text[i:i + 32]})
            elif kind == "key":
                send_keys("TypeKey", {"keyCode": int(k["Value"])})
            elif kind == "scancodes":
                send_keys("TypeScancodes", {"scancodes": list(k["Value"])})
            else:
                raise HostError(f"unknown key action '{kind}' (text, key, scancodes or wait)")
            typed += 1
    return {"Name": vm.name, "State": by_id(h, p["Id"]).state, "Typed": typed}


@twin
def stop_vm(h: HostModel, p: dict[str, Any]) -> Any:
    vm = by_id(h, p["Id"])
    if vm.state == "Off":
        return {"Name": vm.name, "Result": "already-off"}
    job = None
    if not p.get("WaitOnly", False):
        job = h.cmd("Stop-VM", VM=vm, Force=True, AsJob=True)
    deadline = h.now + p.get("TimeoutSeconds", 120)
    while by_id(h, p["Id"]).state != "Off" and h.now < deadline:
        h.cmd("Start-Sleep", Seconds=2)
    if by_id(h, p["Id"]).state == "Off":
        result = "stopped"
        if job:
            h.cmd("Remove-Job", Job=job, Force=True)
    elif p.get("WaitOnly", False):
        result = "running"
    else:
        h.cmd("Stop-VM", VM=vm, TurnOff=True, Force=True)
        result = "turned-off"
    return {"Name": vm.name, "Result": result}


@twin
def finish_install(h: HostModel, p: dict[str, Any]) -> Any:
    vm = by_id(h, p["Id"])
    if vm.state != "Off":
        raise HostError(f"VM '{vm.name}' is {vm.state}, not Off: the installer did not power it off")
    h.cmd("Set-VMDvdDrive", _pipe=h.cmd("Get-VMDvdDrive", VM=vm), Path=None)
    disk = h.cmd("Select-Object", _pipe=h.cmd("Get-VMHardDiskDrive", VM=vm), First=1)
    h.cmd("Set-VMFirmware", _pipe=vm, FirstBootDevice=disk)
    return {"Name": vm.name, "FirstBootDevice": disk.path}


@twin
def adopt_vm(h: HostModel, p: dict[str, Any]) -> Any:
    if p.get("Id"):
        vm = by_id(h, p["Id"])
    else:
        name = p["Name"]
        found = [v for v in h.cmd("Get-VM") if v.name == name]
        if not found:
            raise HostError(f"no VM named '{name}' on this host (Get-VM lists them)")
        if len(found) > 1:
            raise HostError(f"{len(found)} VMs are named '{name}' (Ids {', '.join(v.id for v in found)}): "
                            "give --hyperv-base-vm the Id of yours")
        vm = found[0]
    if vm.generation != 2:
        raise HostError(f"VM '{vm.name}' is Generation {vm.generation}; GMIs are Generation 2 only")
    disks = h.cmd("Get-VMHardDiskDrive", VM=vm)
    if len(disks) != 1:
        raise HostError(f"VM '{vm.name}' has {len(disks)} disks; a GMI has exactly one")
    base = disks[0].path
    while h.cmd("Get-VHD", Path=base)["VhdType"] == "Differencing":
        base = h.cmd("Get-VHD", Path=base)["ParentPath"]
    asked = p["MaxVersion"]
    if tuple(map(int, vm.version.split("."))) > tuple(map(int, asked.split("."))):
        raise HostError(f"VM '{vm.name}' has configuration version {vm.version}, newer than "
                        f"--hyperv-vm-version {asked}: its GMI would not import where {asked} does; "
                        f"make it with New-VM -Version {asked}, or pass --hyperv-vm-version {vm.version}")
    if PureWindowsPath(base).name != f"{p['DiskName']}.vhdx":
        raise HostError(f"VM '{vm.name}': its disk is '{PureWindowsPath(base).name}'; vmgenie finds the "
                        f"GMI's disk by its name, '{p['DiskName']}.vhdx': rename the file (VM off: "
                        "Rename-Item, then Set-VMHardDiskDrive -Path) and run again")
    guard_automatic_checkpoints(h, vm)
    return {"Name": vm.name, "Id": vm.id, "Generation": vm.generation, "Version": vm.version,
            "State": vm.state, "Vhdx": disks[0].path, "BaseVhdx": base, "Notes": vm.notes,
            "Checkpoints": [PureWindowsPath(c).stem for c in h.cmd("Get-VMSnapshot", VM=vm)],
            "DvdPaths": [d.path or "" for d in h.cmd("Get-VMDvdDrive", VM=vm)]}


@twin
def vm_status(h: HostModel, p: dict[str, Any]) -> Any:
    vm = by_id(h, p["Id"])
    adapters = h.cmd("Get-VMNetworkAdapter", VM=vm)
    h.cmd("Get-NetNeighbor", ErrorAction="SilentlyContinue")
    services = h.cmd("Get-VMIntegrationService", VM=vm)
    heartbeat = next((s for s in services if "84EAAE65-2F2E-45F5-9BB5-0E857DC8EB47" in s["Id"]), None)
    return {"Name": vm.name, "Id": vm.id, "State": vm.state, "Status": vm.shown_status,
            "Heartbeat": heartbeat["PrimaryStatusDescription"] if heartbeat else "unknown",
            "Uptime": 0, "Notes": vm.notes,
            "Adapters": [{"MacAddress": "-".join(a["MacAddress"][i:i + 2] for i in range(0, 12, 2)),
                          "IPAddresses": list(a["IPAddresses"])} for a in adapters],
            "Neighbours": []}


@twin
def compact_disk(h: HostModel, p: dict[str, Any]) -> Any:
    vm = by_id(h, p["Id"])
    if vm.state != "Off":
        raise HostError(f"VM '{vm.name}' is {vm.state}; compacting needs it Off")
    drive = h.cmd("Select-Object", _pipe=h.cmd("Get-VMHardDiskDrive", VM=vm), First=1)
    path = drive.path
    merged: list[str] = []
    names: list[str] = []
    checkpoints = h.cmd("Get-VMSnapshot", VM=vm)
    if checkpoints:
        names = [PureWindowsPath(c).stem for c in checkpoints]
        h.cmd("Remove-VMSnapshot", _pipe=checkpoints, Confirm=False)
        while True:
            h.cmd("Start-Sleep", Seconds=2)
            current = by_id(h, p["Id"])
            path = h.cmd("Select-Object", _pipe=h.cmd("Get-VMHardDiskDrive", VM=current), First=1).path
            merging = "Merging" in current.shown_status
            if not (merging or path.lower().endswith(".avhdx")):
                break
    while h.cmd("Get-VHD", Path=path)["VhdType"] == "Differencing":
        raise AssertionError("unreachable in the model")
    before = h.cmd("Get-Item", LiteralPath=path)["Length"]
    mode, mount_error = "Full", ""
    for attempt in range(1, 6):
        try:
            h.cmd("Mount-VHD", Path=path, ReadOnly=True, NoDriveLetter=True)
            break
        except HostError as exc:
            mount_error = str(exc)
            if attempt >= 5:
                if in_use(h, path):
                    raise HostError(f"the disk {path} is still in use 10 s after the VM stopped: "
                                    f"{mount_error}") from None
                mode = "Prezeroed"
                break
            h.cmd("Start-Sleep", Seconds=2)
    if mode == "Full":
        mount_error = ""
    try:
        retried(h, lambda: h.cmd("Optimize-VHD", Path=path, Mode=mode))
    finally:
        if mode == "Full":
            h.cmd("Dismount-VHD", Path=path)
    vhd = h.cmd("Get-VHD", Path=path)
    after = h.cmd("Get-Item", LiteralPath=path)["Length"]
    return {"Path": path, "Merged": merged, "Checkpoints": names, "BytesBefore": before,
            "BytesAfter": after, "VirtualSize": vhd["Size"], "VhdType": vhd["VhdType"],
            "OptimizeMode": mode, "MountError": mount_error}


@twin
def export_vm(h: HostModel, p: dict[str, Any]) -> Any:
    export_name, staging, dest = p["ExportName"], p["Staging"], p["Destination"]
    replace = p.get("Replace", False)
    vm = by_id(h, p["Id"])
    if vm.state != "Off":
        raise HostError(f"VM '{vm.name}' is {vm.state}; export it Off")
    if h.cmd("Get-VMSnapshot", VM=vm):
        raise HostError(f"VM '{vm.name}' has checkpoints; merge them first")
    if h.cmd("Test-Path", LiteralPath=dest) and not replace:
        raise HostError(f"{dest} already exists; remove it (or pass --force to replace it)")
    h.cmd("New-Item", ItemType="Directory", Path=staging, Force=True)
    exported = join(h, staging, export_name)
    if h.cmd("Test-Path", LiteralPath=exported):
        h.cmd("Remove-Item", LiteralPath=exported, Recurse=True, Force=True)
    own_name, notes = vm.name, vm.notes or ""
    connected = [(a["Adapter"], a["SwitchName"]) for a in h.cmd("Get-VMNetworkAdapter", VM=vm)
                 if a["SwitchName"]]
    media = [(d, d.path) for d in h.cmd("Get-VMDvdDrive", VM=vm) if d.path]
    try:
        h.cmd("Set-VM", _pipe=vm, Notes="")
        for adapter, _ in connected:
            h.cmd("Disconnect-VMNetworkAdapter", VMNetworkAdapter=adapter)
        for drive, _ in media:
            h.cmd("Set-VMDvdDrive", VMDvdDrive=drive, Path=None)
        h.cmd("Rename-VM", VM=vm, NewName=export_name)
        h.cmd("Export-VM", VM=vm, Path=staging)
    finally:
        h.cmd("Rename-VM", VM=vm, NewName=own_name)
        h.cmd("Set-VM", _pipe=vm, Notes=notes)
        for adapter, switch in connected:
            h.cmd("Connect-VMNetworkAdapter", VMNetworkAdapter=adapter, SwitchName=switch)
        for drive, path in media:
            h.cmd("Set-VMDvdDrive", VMDvdDrive=drive, Path=path)
    vmcx = h.cmd("Get-ChildItem", LiteralPath=join(h, exported, "Virtual Machines"), Filter="*.vmcx",
                 Recurse=True)
    if len(vmcx) != 1:
        raise HostError(f"Export-VM wrote {len(vmcx)} .vmcx files; vmgenie imports exactly one")
    disks = h.cmd("Get-ChildItem", LiteralPath=join(h, exported, "Virtual Hard Disks"), File=True)
    if len(disks) != 1 or disks[0]["Extension"] != ".vhdx":
        raise HostError(f"Export-VM wrote disks {', '.join(d['Name'] for d in disks)}; "
                        "a GMI has exactly one .vhdx")
    if disks[0]["Name"] != f"{export_name}.vhdx":
        raise HostError(f"the exported disk is '{disks[0]['Name']}', vmgenie needs '{export_name}.vhdx': "
                        "rename the VM's disk and export again")
    if h.cmd("Test-Path", LiteralPath=dest):
        h.cmd("Remove-Item", LiteralPath=dest, Recurse=True, Force=True)
    h.cmd("New-Item", ItemType="Directory", Path=dest, Force=True)
    flattened = "moved"
    try:
        for sub in ("Virtual Machines", "Virtual Hard Disks"):
            source, target = join(h, exported, sub), join(h, dest, sub)
            try:
                h.cmd("Move-Item", LiteralPath=source, Destination=target)
            except HostError:
                if h.cmd("Test-Path", LiteralPath=target):
                    h.cmd("Remove-Item", LiteralPath=target, Recurse=True, Force=True)
                h.cmd("Copy-Item", LiteralPath=source, Destination=target, Recurse=True)
                flattened = "copied"
        h.cmd("New-Item", ItemType="Directory", Path=join(h, dest, "Snapshots"), Force=True)
    except HostError:
        h.cmd("Remove-Item", LiteralPath=dest, Recurse=True, Force=True, ErrorAction="SilentlyContinue")
        raise
    finally:
        h.cmd("Remove-Item", LiteralPath=exported, Recurse=True, Force=True, ErrorAction="SilentlyContinue")
    root = h.cmd("Get-Item", LiteralPath=dest)["FullName"].rstrip("\\") + "\\"
    files = [{"Path": f["FullName"][len(root):], "Length": f["Length"]}
             for f in h.cmd("Get-ChildItem", LiteralPath=dest, Recurse=True, File=True)]
    vhdx = join(h, dest, f"Virtual Hard Disks\\{export_name}.vhdx")
    return {"Root": dest, "Files": files, "Vhdx": vhdx,
            "VhdxSha256": h.cmd("Get-FileHash", LiteralPath=vhdx, Algorithm="SHA256")["Hash"].lower(),
            "Flattened": flattened, "DisconnectedSwitch": [s for _, s in connected],
            "EmptiedMedia": [path for _, path in media]}


@twin
def import_check(h: HostModel, p: dict[str, Any]) -> Any:
    scratch = p["Scratch"]
    h.cmd("New-Item", ItemType="Directory", Path=scratch, Force=True)
    try:
        report = h.cmd("Compare-VM", Path=p["Vmcx"], Copy=True, GenerateNewId=True,
                       VirtualMachinePath=scratch, VhdDestinationPath=scratch)
        found = [{"MessageId": i["MessageId"], "Message": i["Message"]} for i in report["Incompatibilities"]]
    except HostError as exc:
        found = [{"MessageId": None, "Message": str(exc)}]
    finally:
        h.cmd("Remove-Item", LiteralPath=scratch, Recurse=True, Force=True, ErrorAction="SilentlyContinue")
    return {"Vmcx": p["Vmcx"], "Incompatibilities": found}


@twin
def read_chunk(h: HostModel, p: dict[str, Any]) -> Any:
    data = h.read(p["Path"])
    offset, count = p.get("Offset", 0), p.get("Count", 8 << 20)
    got = data[offset:offset + count]
    return {"N": len(got), "Data": base64.b64encode(got).decode()}


@twin
def write_chunk(h: HostModel, p: dict[str, Any]) -> Any:
    part = p["Path"] + ".part"
    if not p.get("Data"):
        length = (h.cmd("Get-Item", LiteralPath=part)["Length"]
                  if h.cmd("Test-Path", LiteralPath=part, PathType="Leaf") else 0)
        return {"Part": part, "Length": length}
    data = base64.b64decode(p["Data"])
    offset = p.get("Offset", 0)
    current = h.files[key(part)].data if key(part) in h.files else b""  # [IO.File]::Open OpenOrCreate
    if offset > len(current):
        raise HostError(f"{part} holds {len(current)} bytes; a chunk at offset {offset} would leave a gap")
    if h.break_upload_at is not None and len(current[:offset]) + len(data) > h.break_upload_at:
        cut = h.break_upload_at - offset  # the session breaks half-way through this chunk
        h.write(part, current[:offset] + data[:max(cut, 0)])
        h.break_upload_at = None
        from harness.backends.hyperv.transport import TransportError

        raise TransportError(f"write_chunk.ps1 on {h.host}: the PowerShell Remoting session broke "
                             "again after reconnecting")
    if h.corrupt_next_chunk:  # a bit flipped on the way (the final SHA-256 must catch it)
        h.corrupt_next_chunk = False
        data = bytes([data[0] ^ 1]) + data[1:]
    h.write(part, current[:offset] + data)
    return {"Part": part, "Length": len(h.files[key(part)].data)}


@twin
def finish_upload(h: HostModel, p: dict[str, Any]) -> Any:
    path = p["Path"]
    part = path + ".part"
    if not h.cmd("Test-Path", LiteralPath=part) and h.cmd("Test-Path", LiteralPath=path):
        part = path
    digest = h.cmd("Get-FileHash", LiteralPath=part, Algorithm="SHA256")["Hash"].lower()
    if digest != p["Sha256"].lower():
        h.cmd("Remove-Item", LiteralPath=part, Force=True)
        raise HostError(f"the upload to {path} has SHA-256 {digest}, the sender's file "
                        f"{p['Sha256'].lower()}: removed")
    if part != path:
        if h.cmd("Test-Path", LiteralPath=path):
            h.cmd("Remove-Item", LiteralPath=path, Force=True)
        h.cmd("Move-Item", LiteralPath=part, Destination=path)
    item = h.cmd("Get-Item", LiteralPath=path)
    return {"Path": item["FullName"], "Length": item["Length"], "Sha256": digest}


@twin
def new_clone_vm(h: HostModel, p: dict[str, Any]) -> Any:
    name, folder = p["Name"], p["Folder"]
    vhdx = join(h, folder, f"{name}.vhdx")
    h.cmd("Copy-Item", LiteralPath=p["SourceVhdx"], Destination=vhdx)
    memory = p.get("MemoryMB", 512) << 20
    vm = h.cmd("New-VM", Name=name, Generation=2, MemoryStartupBytes=memory, VHDPath=vhdx,
               SwitchName=p["SwitchName"], Path=folder)
    h.cmd("Set-VM", _pipe=vm, Notes=p["Notes"])
    try:
        h.cmd("Set-VM", _pipe=vm, ProcessorCount=p.get("ProcessorCount", 1), CheckpointType="Disabled",
              AutomaticStopAction="ShutDown", AutomaticStartAction="Nothing")
        guard_automatic_checkpoints(h, vm)
        h.cmd("Set-VMMemory", _pipe=vm, DynamicMemoryEnabled=False, StartupBytes=memory)
        secure_boot(h, vm, p)
        h.cmd("Add-VMDvdDrive", VM=vm, Path=p["SeedIso"])
        h.cmd("Set-VMFirmware", _pipe=vm, FirstBootDevice=h.cmd("Get-VMHardDiskDrive", VM=vm)[0])
        h.cmd("Start-VM", VM=vm)
    except HostError:
        h.cmd("Stop-VM", VM=vm, TurnOff=True, Force=True, ErrorAction="SilentlyContinue")
        h.cmd("Remove-VM", VM=vm, Force=True, ErrorAction="SilentlyContinue")
        raise
    vm = by_id(h, vm.id)
    return {"Name": vm.name, "Id": vm.id, "Vhdx": vhdx, "State": vm.state,
            "ProcessorCount": vm.processors, "MemoryStartup": vm.memory_startup,
            "DynamicMemoryEnabled": vm.dynamic_memory}


@twin
def integration_services(h: HostModel, p: dict[str, Any]) -> Any:
    vm = by_id(h, p["Id"])
    return [{"Key": s["Name"], "Name": s["Name"], "Id": s["Id"], "Enabled": s["Enabled"],
             "PrimaryOperationalStatus": s["PrimaryOperationalStatus"],
             "PrimaryStatusDescription": s["PrimaryStatusDescription"],
             "SecondaryStatusDescription": s["SecondaryStatusDescription"]}
            for s in h.cmd("Get-VMIntegrationService", VM=vm)]


@twin
def remove_items(h: HostModel, p: dict[str, Any]) -> Any:
    tag = p["Tag"]
    removed, skipped = [], []
    vms = []
    for ident in p.get("VmIds") or []:
        if [v for v in h.cmd("Get-VM") if v.id == ident.lower()]:
            vms.append(by_id(h, ident))
    for name in p.get("VmNames") or []:
        vms += [v for v in h.cmd("Get-VM") if v.name == name]
    for vm in vms:
        notes = vm.notes or ""
        if not (notes == tag or notes.startswith(tag + " ")):
            skipped.append(vm.id)
            continue
        deadline = h.now + p.get("WaitSeconds", 600)
        while any(w in vm.shown_status for w in ("Export", "Merg")) and h.now < deadline:
            h.cmd("Start-Sleep", Seconds=2)
            vm = by_id(h, vm.id)
        if vm.state != "Off":
            h.cmd("Stop-VM", VM=vm, TurnOff=True, Force=True)
        disks = [d.path for d in h.cmd("Get-VMHardDiskDrive", VM=vm)]
        h.cmd("Remove-VM", VM=vm, Force=True)
        for d in disks:
            if h.cmd("Test-Path", LiteralPath=d):
                retried(h, lambda d=d: h.cmd("Remove-Item", LiteralPath=d, Recurse=True, Force=True))
        removed.append(vm.id)
    for path in p.get("Paths") or []:
        if h.cmd("Test-Path", LiteralPath=path):
            retried(h, lambda path=path: h.cmd("Remove-Item", LiteralPath=path, Recurse=True, Force=True))
            removed.append(path)
    return {"Removed": removed, "Skipped": skipped}


@twin
def list_leftovers(h: HostModel, p: dict[str, Any]) -> Any:
    roots = p.get("Roots") or [h.cmd("Get-VMHost")["VirtualHardDiskPath"]]
    vms = [{"Name": v.name, "Id": v.id, "State": v.state, "Notes": v.notes} for v in h.cmd("Get-VM")
           if (v.notes or "").startswith("gmi-harness ")]
    folders = []
    for root in roots:
        if not h.cmd("Test-Path", LiteralPath=root):
            continue
        for d in h.cmd("Get-ChildItem", LiteralPath=root, Directory=True, Filter="gmi-harness-*"):
            marker = join(h, d["FullName"], "gmi-run.json")
            text = read_all_text(h, marker) if h.cmd("Test-Path", LiteralPath=marker) else ""
            partial = [{"Path": f["FullName"], "Length": f["Length"]}
                       for f in h.cmd("Get-ChildItem", LiteralPath=d["FullName"], Recurse=True, File=True,
                                      Filter="*.part")]
            folders.append({"Path": d["FullName"], "Marker": text, "Partial": partial})
    return {"Vms": vms, "Folders": folders}
