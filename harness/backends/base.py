"""The hypervisor interface (the table of backends, each imported only when chosen, is
:mod:`harness.backends`).

A backend does what only the host can do: create the build VM and install the OS
into it (Step 1), power VMs on and off, compact the disk and turn it into a dynamic
VHDX (Step 6), and boot a brand-new VM from a finished disk with a seed ISO (the
checks). Everything inside the guest is done by the stages, the same for every
backend: over SSH, or (QEMU, ``--prepare=chroot``) in the new system's root tree on
the host, so that the image's first boot is the checks' clone.
"""

from __future__ import annotations

import contextlib
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from harness.errors import ConfigError, GmiError
from harness.log import clean_console
from harness.settings import prepare_mode

if TYPE_CHECKING:
    from harness.build import Build
    from harness.distro import Distro
    from harness.settings import Settings
    from harness.ssh import Shell

class VM(ABC):
    """A virtual machine the harness created. Its SSH endpoint is (host, port)."""

    name: str
    ssh_host: str
    ssh_port: int
    serial_log: Path | None

    @abstractmethod
    def is_running(self) -> bool: ...

    @abstractmethod
    def shutdown(self, timeout: float) -> None:
        """Graceful power-off (ACPI), then a hard stop when ``timeout`` runs out."""

    @abstractmethod
    def wait_stopped(self, timeout: float) -> bool:
        """Wait for the guest to power itself off; True when it did."""

    @abstractmethod
    def start(self) -> None:
        """Power on (again) with the same disk and UEFI variables."""

    @abstractmethod
    def destroy(self) -> None:
        """Stop the VM hard and remove everything it created (disks of clones too)."""

    @abstractmethod
    def describe(self) -> str:
        """One line telling a person how to reach a VM that was kept."""

    def stop_now(self) -> None:  # noqa: B027 - optional: a backend that cannot does nothing
        """Stop the VM at once, without waiting for anything (from the interrupt
        watchdog's thread, when the orderly end did not come in time). Its disks stay:
        the scratch folder they are in is removed after."""

    def disk_allocated(self) -> int | None:
        """Bytes the VM's disk occupies on the host now, when the backend can tell."""
        return None

    @property
    def emulated_cpu(self) -> bool:
        """The guest's CPUs are emulated in software (QEMU without KVM): a vCPU thread
        the host starves of CPU time shows in the guest's kernel log as an RCU stall or a
        soft lockup, which says something of the host's load, not of the image."""
        return False

    def serial_tail(self, lines: int = 30) -> str:
        if self.serial_log is None or not self.serial_log.exists():
            return "(no serial console captured)"
        return "\n".join(clean_console(self.serial_log.read_bytes()).splitlines()[-lines:])


@dataclass(frozen=True)
class ExportedDisk:
    """What Step 6 made on the host: size figures (bytes) for the build record, and the
    exported VM's folder tree (``Virtual Machines/`` with the ``.vmcx``, ``Snapshots/``)
    fetched locally, or None for a disk-only export."""

    sizes: dict[str, int]
    vm_tree: Path | None = None


@dataclass(frozen=True)
class CloneShape:
    """The VM the checklist runs on, shaped as vmgenie provisions one from a GMI
    (``ProvisionVm``: 1 vCPU, 512 MB static memory, Secure Boot on with
    MicrosoftUEFICertificateAuthority), unless the ``clone_*`` settings say otherwise.
    The build VM keeps its own size (``vm_cpus``, ``vm_memory_mb``)."""

    cpus: int
    memory_mb: int
    secure_boot: bool
    secure_boot_template: str

    @classmethod
    def of(cls, settings: Settings) -> CloneShape:
        return cls(settings.clone_cpus, settings.clone_memory_mb,
                   settings.clone_secure_boot == "on", settings.clone_secure_boot_template)

    def record(self, **how: str) -> dict[str, Any]:
        """The build record's ``clone_shape`` (``how``: what the backend made of it)."""
        return {"cpus": self.cpus, "memory_mb": self.memory_mb, "memory": "static",
                "secure_boot": "on" if self.secure_boot else "off",
                "secure_boot_template": self.secure_boot_template if self.secure_boot else "",
                **how}

    def describe(self) -> str:
        boot = (f"Secure Boot on ({self.secure_boot_template})" if self.secure_boot
                else "Secure Boot off")
        return f"{self.cpus} vCPU, {self.memory_mb} MB static, {boot}"


class HostView(ABC):
    """The hypervisor host's view of one running VM."""

    @abstractmethod
    def reported_addresses(self) -> list[str]:
        """The IPv4 addresses the guest reports to the host (Hyper-V: KVP)."""

    @abstractmethod
    def integration_service_problems(self) -> list[str]:
        """Integration services the host finds missing, off or unhealthy (empty: fine)."""


class PackageCache(Protocol):
    """A package cache a backend runs for the run (QEMU: apt-cacher-ng on loopback)."""

    port: int

    def stop(self, grace: float = 10) -> dict[str, int]:
        """Stop it (asked to, or killed after ``grace`` s; killed at once when 0), leaving
        nothing of it behind; what it fetched from the mirrors and served (bytes, files)."""
        ...


class Backend(ABC):
    """One hypervisor. Implementations are registered in
    :data:`harness.backends.BACKENDS`.

    What a backend can do is said by its class facts below, asked where the backend is
    chosen (:meth:`check_settings`) and wherever the difference shows; nothing outside
    a backend's own folder asks for it by name (``name`` is a label)."""

    name: str
    # Step 1 can leave the fresh install as a root tree on this host, for stages 2-5 in
    # a chroot before one first boot (--prepare=chroot, :meth:`prepare_in_chroot`).
    prepares_in_chroot: ClassVar[bool] = False
    # Its export holds the VM's configuration (Hyper-V's .vmcx) beside the disk, as
    # vmgenie imports it; a backend without it writes disk-only archives (--promote
    # turns those into full ones on a backend that has it).
    writes_vmcx: ClassVar[bool] = False
    # Its guests run on Hyper-V's VMBus (the hv_* drivers bind, KVP and VSS run).
    has_vmbus: ClassVar[bool] = False
    # The address of this host as the build VM sees it ("": the VM cannot reach this
    # host's loopback services, such as the package cache)
    host_from_guest: str = ""

    @classmethod
    def check_settings(cls, settings: Settings) -> None:
        """What the settings ask of this backend, checked against its class facts where
        it is chosen (:func:`harness.backends.choose`): one line that says what to do."""
        if not cls.prepares_in_chroot and any(v.endswith("chroot") for v in settings.prepare):
            raise ConfigError(f"--prepare=chroot: the {cls.name} backend prepares in the build VM "
                              "(it makes no root tree on this host); use --prepare=vm or leave it out")
        if settings.promote and not cls.writes_vmcx:
            raise ConfigError(f"--promote needs a backend that writes the .vmcx vmgenie imports; "
                              f"the {cls.name} backend writes disk-only archives")

    def host_label(self, build: Build) -> str:
        """The machine the build ran on, as the reports name it (default: this one)."""
        return socket.gethostname()

    @classmethod
    def settings_problems(cls, settings: Settings, distros: Sequence[Distro],
                          janitor: bool = False) -> list[str]:
        """What this backend cannot do with these settings, one line each, found before
        anything runs (at configure time): the settings it needs and was not given (all
        of them in one line), files it will read that are not there, combinations it
        refuses, ``--iso-version`` where it installs from no official ISO. ``distros``:
        the run's builds; ``janitor``: for ``--janitor`` only."""
        return []

    @classmethod
    def installs_instead_of_the_iso(cls, settings: Settings, distro: Distro) -> str:
        """'' when a build of ``distro`` installs from its official ISO (what
        ``--iso-version`` pins); else what it installs from instead, in words ("installs
        with debootstrap from the archive")."""
        return ""

    @classmethod
    def start_package_cache(cls, settings: Settings, logdir: Path) -> PackageCache | None:
        """Once per run, on the controller: the package cache the builds' apt goes
        through (``--package-cache``), or None where the backend has none."""
        return None

    @classmethod
    def prepare_host(cls, settings: Settings, scratch: Path) -> dict[str, Any]:
        """Once per run (not per xdist worker): check the host and learn facts every
        build shares (JSON-able); ``scratch`` is removed afterwards."""
        return {}

    @classmethod  # noqa: B027 - an optional hook: doing nothing is the default
    def use_host_facts(cls, facts: dict[str, Any]) -> None:
        """Take the facts :meth:`prepare_host` returned (in every worker)."""

    @classmethod
    def janitor(cls, settings: Settings, mode: str) -> int:
        """``--janitor=list|remove``: find (and remove) what dead runs left behind;
        returns the exit status."""
        raise ConfigError(f"the {cls.name} backend has no janitor")

    @abstractmethod
    def check_host(self, build: Build) -> None:
        """Fail early, with the install line, when a host tool is missing."""

    @abstractmethod
    def provision(self, build: Build) -> VM:
        """Step 1: a new Generation 2 VM with a fresh OS install, running, SSH reachable."""

    def prepare_in_chroot(self, build: Build) -> Shell | None:
        """Step 1 for ``--prepare=chroot``: the fresh install as a root tree on this host
        and a shell into it, for stages 2-6; None: this build prepares in its VM
        (:meth:`provision`). A backend without root trees refuses ``chroot``."""
        if prepare_mode(build.settings.prepare, build.distro.name) == "chroot":
            raise ConfigError(f"--prepare=chroot: the {self.name} backend prepares in the build VM; "
                              "use --prepare=vm (or auto)")
        return None

    def export_tree(self, build: Build, vhdx: Path) -> ExportedDisk:
        """Step 6 on the host after ``--prepare=chroot``: the prepared and sealed root
        tree made into the image's disk, and that disk into a dynamic VHDX at ``vhdx``
        (the image never booted: its first boot is the checks' clone)."""
        raise GmiError(f"the {self.name} backend has no prepared root tree")

    @abstractmethod
    def export_disk(self, build: Build, vhdx: Path) -> ExportedDisk:
        """Step 6 on the host: compact the stopped build VM's disk into a dynamic VHDX
        at ``vhdx``; returns its size figures, and the exported VM (its ``.vmcx``)
        where the backend makes one."""

    def host_view(self, build: Build, vm: VM) -> HostView | None:
        """What the hypervisor host sees of a running VM (integration services, the
        addresses the guest reports), for the checks only a real host can judge; None
        where the backend has no such host (QEMU)."""
        return None

    @abstractmethod
    def clone(self, build: Build, vhdx: Path, seed_iso: Path, name: str) -> VM:
        """A brand-new VM (fresh UEFI variables) in the :class:`CloneShape` of the
        settings (vmgenie's by default), on a copy-on-write clone of ``vhdx``, with
        ``seed_iso`` in its DVD drive, running; ``build.record["clone_shape"]`` says
        what it got."""

    def promote(self, build: Build) -> None:
        """``--promote``: make the disk-only archive's disk (``build.vhdx``, extracted
        and verified) a VM of this hypervisor, exported unbooted into ``build.vm_tree``.
        Only a backend that writes the ``.vmcx`` vmgenie imports can."""
        raise ConfigError(f"--promote needs a backend that writes the .vmcx vmgenie imports "
                          f"(--backend=hyperv); the {self.name} backend cannot")


def keeps(policy: str, failed: bool) -> bool:
    """``--keep``: keep VMs and scratch 'always', 'on-failure' (when this build failed),
    or 'never'. The one place that reads the policy's words."""
    return policy == "always" or (policy == "on-failure" and failed)


def release(vms: Iterable[VM], keep: bool, say: Callable[[str], None]) -> None:
    """The end of VMs, the last made first (a clone before the VM whose disk or folder
    it uses): destroyed, or (kept) left as they are with a line telling a person how to
    reach each one that still runs."""
    for vm in reversed(list(vms)):
        if not keep:
            vm.destroy()
        elif vm.is_running():
            say(vm.describe())


@contextlib.contextmanager
def kept(vm: VM, policy: str, failed: Callable[[], bool], say: Callable[[str], None],
         owner: list[VM] | None = None) -> Iterator[VM]:
    """Use ``vm`` for the ``with`` block; at its end destroy it unless the keep policy
    says otherwise (``failed`` is asked then), and drop it from ``owner`` (the build's
    list of VMs), so nothing destroys it a second time."""
    try:
        yield vm
    finally:
        release([vm], keeps(policy, failed()), say)
        if owner is not None and vm in owner:
            owner.remove(vm)
