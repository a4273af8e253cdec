"""The hypervisor backends, and their table (a backend's module is imported only when
it is chosen, as pytest-testinfra does): ``base`` holds the interface, each backend
has a folder of its own."""

from __future__ import annotations

import importlib

from harness.backends.base import Backend
from harness.errors import ConfigError
from harness.host import hostos

BACKENDS = {
    "qemu": "harness.backends.qemu:QemuBackend",
    "hyperv": "harness.backends.hyperv:HyperVBackend",
}
# Backends that drive Linux tools, and which: refused on any other OS before import.
NEEDS_LINUX = {
    "qemu": "qemu-system-x86_64, qemu-img, debootstrap and mkfs.ext4",
}


def check_backend(name: str) -> str:
    """``name``'s entry in the table, without importing it: an unknown name lists the
    known ones; a backend this OS cannot run is refused in one line."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}"
        ) from None
    if name in NEEDS_LINUX and not hostos.current().linux:
        raise ConfigError(
            f"the {name} backend needs Linux ({NEEDS_LINUX[name]}); on this "
            f"{hostos.current().name.capitalize()} machine use --backend=hyperv (with "
            "--hyperv-local on the Hyper-V host itself)")
    return target


def backend_class(name: str) -> type[Backend]:
    """The class of backend ``name`` (for what needs no instance: host preparation,
    the janitor); see :func:`check_backend` for the names it refuses."""
    module_name, _, cls_name = check_backend(name).partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), cls_name)
    return cls


def get_backend(name: str) -> Backend:
    """Instantiate the backend ``name``; an unknown name lists the known ones."""
    return backend_class(name)()
