"""Root-tree building on this host, by package-manager family (as mkosi keeps its
``installer/`` apart from the VM runners that boot the result).

A family's bootstrapper makes a fresh install as a folder (apt: debootstrap), gives a
shell into it for the stages (a chroot in a private mount namespace), and makes the
image's disk from it (a GPT disk with an ESP and one ext4 root, written without mounts
or loop devices). Nothing here knows a hypervisor: a backend asks
:func:`bootstrapper` for the distro's family and boots what it made. Also kept here:
the tree cache (``--incremental``), the package cache (``--package-cache``), and the
ext4 journal given back before the VHDX.

A second family (pacman's pacstrap, dnf's ``--installroot``) is one module with a
class like :class:`harness.rootfs.debootstrap.Debootstrap` and one row in
:data:`BOOTSTRAPPERS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from harness.build import Build
    from harness.rootfs.chroot import ChrootShell

# package-manager family -> (the install method, "module:class" of its bootstrapper,
# imported when used)
BOOTSTRAPPERS = {"apt": ("debootstrap", "harness.rootfs.debootstrap:Debootstrap")}


class Bootstrapper(Protocol):
    """Step 1 as a root tree on this host, for one package-manager family."""

    # The install method the catalogue names for it (``install.method: debootstrap``)
    method: str

    def host_tools(self, build: Build) -> list[str]:
        """The host commands it needs for this build (the host check names them)."""
        ...

    def install_disk(self, build: Build, nic_names: Sequence[str]) -> Path:
        """A fresh install made into a raw disk, ready to boot (``--prepare=vm``);
        ``nic_names``: what the hypervisor's NIC is called before the stages make it
        eth0."""
        ...

    def install_tree(self, build: Build, nic_names: Sequence[str]) -> ChrootShell:
        """A fresh install kept as a root tree, and a shell into it for stages 2-6
        (``--prepare=chroot``)."""
        ...

    def disk_from_tree(self, build: Build) -> Path:
        """The prepared and sealed tree made into the image's raw disk (the tree is
        removed)."""
        ...


def bootstrapper(family: str) -> Bootstrapper | None:
    """The bootstrapper of a package-manager family; None: that family has none here
    (its images install from their ISO)."""
    if family not in BOOTSTRAPPERS:
        return None
    module, name = BOOTSTRAPPERS[family][1].split(":")
    cls = getattr(importlib.import_module(module), name)
    instance: Bootstrapper = cls()
    return instance
