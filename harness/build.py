"""The build context: what the build has made so far (kept apart from the frozen
settings and distro it was asked for), plus timed, logged steps and credentials."""

from __future__ import annotations

import contextlib
import logging
import secrets
import string
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from harness.backends.base import VM, Backend
from harness.distro import Distro
from harness.errors import GmiError, GuestHungError, register_secret
from harness.host import hostos
from harness.log import MaskingFormatter
from harness.settings import Settings
from harness.ssh import Guest, KeyPair, Result, Shell


def generate_password(length: int = 24) -> str:
    """A strong random password (letters and digits: safe in any shell or file)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(length))
        if any(c.islower() for c in pw) and any(c.isupper() for c in pw) and any(
            c.isdigit() for c in pw
        ):
            return pw


@dataclass(frozen=True)
class Credentials:
    """Build-time secrets: the root and admin passwords and the per-build SSH key."""

    admin_user: str
    root_password: str = field(repr=False)
    admin_password: str = field(repr=False)
    key: KeyPair = field(repr=False)

    @classmethod
    def generate(cls, admin_user: str, comment: str) -> Credentials:
        creds = cls(admin_user, generate_password(), generate_password(),
                    KeyPair.generate(comment))
        for secret in (creds.root_password, creds.admin_password, creds.key.private_openssh):
            register_secret(secret)
        return creds

    def record(self, directory: Path, title: str) -> Path:
        """Write the passwords to a user-private file (Linux: 0600 in a 0700 folder;
        Windows: an ACL for this user alone, :mod:`harness.host.hostos`), the only place they
        are ever written. Returns its path."""
        directory = directory.expanduser()
        private = hostos.current()
        private.private_folder(directory)
        path = directory / f"{title.replace(' ', '-')}.txt"
        with private.private_file(path) as f:
            f.write(
                f"{title} (created {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ})\n"
                f"  root:  {self.root_password}\n"
                f"  {self.admin_user}: {self.admin_password}\n"
                "These are build-time only; derived cloud-init VMs never use them, and the\n"
                "sealed image has both accounts locked.\n"
            )
        return path


class BuildFacts(TypedDict, total=False):
    """What the build record holds (``Build.record``): declared once, so that mypy checks
    every key written or read (a new fact is a new line here). Most of it goes into the
    archive as ``gmi-build-record.yml`` (:func:`harness.archive.export.public_record`)."""

    # who built it, where, how (the build fixture, the backends)
    harness: str
    backend: str
    distro: str
    package_cache: str
    accel: str
    prepared_in: str  # "chroot" or "vm"
    installed_by: str
    step1_tree: str  # Step 1's kept tree: made, kept, reused (--incremental)
    install_iso: dict[str, str]  # the ISO used: file, sha256, source, version
    install_iso_sha256: str
    answer_files: list[str]  # their names only: their text holds password hashes
    root_uuid: str
    esp_uuid: str
    credentials_file: str  # (kept out of the archive)
    admin_user: str
    build_public_key: str
    build_machine_id: str
    build_nic: str
    install_kernel: str
    build_host_keys: list[str]
    # the Hyper-V host
    hyperv_host: str
    hyperv_host_name: str
    hyperv_vm: dict[str, Any]
    hyperv_address_source: str
    hyperv_export: dict[str, Any]
    hyperv_host_os: dict[str, Any]  # the host's Windows version and build
    hyperv_config_version: dict[str, Any]  # the VM's, the host's default and list, where it imports
    hyperv_import_check: dict[str, Any]  # Compare-VM on the exported .vmcx: its incompatibilities
    hyperv_adopted: dict[str, Any]  # --hyperv-base-vm: Id, name, checkpoints, media
    # the stages' findings
    cloud_init_preinstalled: bool
    locales: str
    hv_daemons_from_source: dict[str, Any]
    hv_services: list[str]
    initramfs_modules: str
    fstrim: str
    disk_allocated_before_trim: int
    disk_allocated_after_trim: int
    versions: dict[str, str]  # os, kernel, cloud-init, integration_services
    packages: list[str]
    fs_used_bytes: int
    sizes: dict[str, int]  # Step 6's figures (bytes)
    seed_template: str
    clone_boot_seconds: float
    clone_shape: dict[str, Any]  # the VM the checklist ran on (backends/base.py CloneShape)
    # timings
    stage_durations: dict[str, float]
    work_seconds: dict[str, dict[str, float]]  # stage -> kind of work -> seconds
    scratch_peak_bytes: int
    # the export, and the checks it was gated on
    check_results: dict[str, str]
    check_items: dict[str, str]
    built: str
    disk_only: bool
    manifest: dict[str, Any]
    archive: str
    # --gmi: the archive validated, and the facts its own record carried
    layout: dict[str, Any]
    vhdx_info: dict[str, Any]
    vhdx_sha256: str
    archived_record: bool
    expectations: str  # "catalogue" or "generic"
    archived_versions: dict[str, str]
    archived_sizes: dict[str, int]
    archived_stage_durations: dict[str, float]
    archived_accel: str
    # --promote
    promoted: dict[str, Any]
    promoted_archive: str
    # the release evidence (harness/evidence)
    repository_metadata: list[dict[str, str]]  # the InRelease (repomd.xml) files: name, uri, sha256
    source_date_epoch: int
    sbom: dict[str, Any]  # packages, kernel, formats, files, vhdx_sha256
    _vulnerabilities: dict[str, Any]  # today's report (kept out of the archive's record)
    evidence_files: dict[str, str]  # kind -> the file beside the archive; the signing key


@dataclass
class Build:
    """One distro's build: inputs, and everything made along the way."""

    distro: Distro
    settings: Settings
    backend: Backend
    run_id: str
    workdir: Path
    logdir: Path
    creds: Credentials | None = None
    vm: VM | None = None
    vms: list[VM] = field(default_factory=list)  # every VM made for this build
    guest: Shell | None = None  # SSH to the build VM, or (--prepare=chroot) its root tree
    clone_guest: Guest | None = None  # the checks' clone, while it runs (failure evidence)
    vhdx: Path | None = None
    vm_tree: Path | None = None  # the exported VM (.vmcx) beside the VHDX; None: disk only
    archive: Path | None = None  # validating an existing GMI instead of building one
    package_proxy_port: int = 0  # the run's package cache on 127.0.0.1 (0: none)
    subject: str = ""  # what the run's results are keyed by: the --distro or gmi:<path>
    worker: str = ""  # the xdist worker running this build ("" when not under xdist)
    record: BuildFacts = field(default_factory=lambda: BuildFacts())
    timings: dict[str, float] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)  # the steps running now, outermost first
    working_depth: int = 0  # inside how many working() blocks (the outermost one counts)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("gmi.build"))
    progress: Callable[[str], None] = field(
        default=lambda line: print(line, file=sys.stderr, flush=True))
    # Each named step is also entered in these (the plugin adds Allure's steps).
    step_listeners: list[Callable[[str], contextlib.AbstractContextManager[Any]]] = field(
        default_factory=list)

    @property
    def label(self) -> str:
        return self.archive.name if self.archive else self.distro.name

    @property
    def title(self) -> str:
        return f"{self.distro.vmgenie.vm_name} {self.run_id}"

    def attach_logfile(self) -> None:
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.log = logging.getLogger(f"gmi.build.{self.distro.name}.{self.run_id}")
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        handler = logging.FileHandler(self.logdir / "build.log")
        handler.setFormatter(MaskingFormatter("%(asctime)s %(message)s", "%H:%M:%S"))
        self.log.addHandler(handler)

    def detach_logfile(self) -> None:
        for h in list(self.log.handlers):
            h.close()
            self.log.removeHandler(h)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Run a named step: one live line on the terminal with its duration, the same
        in build.log, the same step in each of :attr:`step_listeners` (Allure's, when
        its results are written), and the duration kept in :attr:`timings`."""
        label = f"[{self.label}] {name}"
        start = time.monotonic()
        self.steps.append(name)
        self.progress(f"{label} ...")
        self.log.info("== %s", name)
        ok = False
        try:
            with contextlib.ExitStack() as listeners:
                for listener in self.step_listeners:
                    listeners.enter_context(listener(name))
                yield
            ok = True
        finally:
            self.steps.pop()
            took = time.monotonic() - start
            self.timings[name] = round(took, 1)
            status = "done" if ok else "FAILED"
            self.progress(f"{label} {status} in {took:.0f} s")
            self.log.info("== %s %s in %.1f s", name, status, took)

    def account(self, kind: str, seconds: float) -> None:
        """Count ``seconds`` of real work (``guest`` commands, ``boot`` waits, host
        ``tools`` such as debootstrap and qemu-img) against the stage running now, in
        the build record's ``work_seconds``; the rest of a stage's wall time is the
        harness's own overhead (what benchmarks/build.py reports). Inside a
        :meth:`working` block the block counts, once."""
        if self.working_depth:
            return
        self._add_work(kind, seconds)

    def _add_work(self, kind: str, seconds: float) -> None:
        stage = self.steps[0].split(":")[0] if self.steps else "other"
        work = self.record.setdefault("work_seconds", {}).setdefault(stage, {})
        work[kind] = round(work.get(kind, 0.0) + seconds, 2)

    @contextlib.contextmanager
    def working(self, kind: str) -> Iterator[None]:
        """Time the block as real work of ``kind`` (see :meth:`account`); work timed
        inside it (a host tool's run, a chroot command) is part of it, not counted
        again."""
        start = time.monotonic()
        self.working_depth += 1
        try:
            yield
        finally:
            self.working_depth -= 1
            if not self.working_depth:
                self._add_work(kind, time.monotonic() - start)

    def connect(self) -> Guest:
        """An SSH session as root to the build VM (host keys pinned when known)."""
        assert self.vm is not None and self.creds is not None
        vm = self.vm
        guest = Guest(vm.ssh_host, vm.ssh_port, "root", self.creds.key,
                      host_keys=self.record.get("build_host_keys") or None,
                      alive=vm.is_running, console=vm.serial_tail, logger=self.log,
                      timer=self.account)
        self.guest = guest
        self.wait_for_ssh(vm, guest, "the build VM's SSH")
        return guest

    def wait_for_ssh(self, vm: VM, guest: Guest, what: str) -> None:
        """Wait for ``guest``'s SSH (``--boot-timeout``). A kernel that hangs in boot on
        an emulated CPU (:class:`~harness.errors.GuestHungError` under TCG: a vCPU whose
        timer never fires again) is the emulator's defect, not the image's: that VM is
        stopped and started again, once, and the run's warnings say so. Its console so
        far is kept beside the new one (``*.hung.log``). On KVM and Hyper-V it fails."""
        try:
            guest.wait(self.settings.boot_timeout, what)
            return
        except GuestHungError as exc:
            if not vm.emulated_cpu:
                raise
            said = f"{exc}; under TCG that is the emulator's: the VM was started again, once"
        self.log.warning("%s", said)
        warnings.warn(said, stacklevel=1)
        vm.stop_now()
        if vm.serial_log is not None and vm.serial_log.exists():
            vm.serial_log.replace(vm.serial_log.with_suffix(".hung.log"))
        with self.working("boot"):
            vm.start()
        guest.host, guest.port = vm.ssh_host, vm.ssh_port
        guest.wait(self.settings.boot_timeout, what)

    def build_only_files(self) -> dict[str, str]:
        """Files that speed the build up and never stay in the image: the package
        manager's (dpkg without fsync) and, with a package cache, its proxy setting,
        addressed as the system being prepared reaches this host (its loopback from a
        chroot, the backend's host address from the build VM). Written by Steps 1-2,
        removed by the clean-up stage, absent at the seal and in the checks."""
        pm = self.distro.package_manager()
        files = dict(pm.build_only_files)
        if self.package_proxy_port:
            live = self.guest is not None and self.guest.live
            address = self.backend.host_from_guest if live else "127.0.0.1"
            if address:
                files.update(pm.proxy_files(f"http://{address}:{self.package_proxy_port}/"))
        return files

    @property
    def live(self) -> bool:
        """Whether the stages reach a running system (False: its root tree, in a chroot)."""
        return self._guest().live

    def restart(self) -> None:
        """Power the build VM off from inside (ACPI as the fallback), start it again
        and log in. Not a warm reboot: that can hang under TCG with Secure Boot."""
        assert self.vm is not None and self.guest is not None
        self.sh("systemd-run --no-block --on-active=2 systemctl poweroff", what="power off")
        self.guest.close()
        with self.working("guest"):
            if not self.vm.wait_stopped(180):
                self.vm.shutdown(60)
        with self.working("boot"):
            self.vm.start()
        self.connect()

    def sh(self, script: str, **kw: Any) -> str:
        """Run a script as root in the build VM; returns its output (a non-zero exit
        raises :class:`~harness.errors.GuestCommandError`)."""
        return self.run(script, **kw).output

    def run(self, script: str, *, check: bool = True, **kw: Any) -> Result:
        """Run a script as root in the build VM; with ``check=False`` a non-zero exit
        is returned, not raised."""
        kw.setdefault("timeout", self.settings.command_timeout)
        return self._guest().run(script, check=check, **kw)

    def put(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a file in the build VM (as root)."""
        self._guest().put(path, text, mode)

    def _guest(self) -> Shell:
        if self.guest is None:
            raise GmiError("no SSH session to the build VM")
        return self.guest
