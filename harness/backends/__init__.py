"""The hypervisor backends, and their table (a backend's module is imported only when
it is chosen, as pytest-testinfra does): ``base`` holds the interface, each backend
has a folder of its own."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from harness.backends.base import Backend
from harness.errors import ConfigError
from harness.host import hostos

if TYPE_CHECKING:
    from harness.settings import Settings

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


def choose(settings: Settings) -> type[Backend]:
    """The backend ``settings`` name, checked where it is chosen: a known name this OS
    can run (:func:`check_backend`), able to do what the settings ask of it (its class
    facts, :meth:`Backend.check_settings`). A refusal names the backends that can."""
    cls = backend_class(settings.backend)
    try:
        cls.check_settings(settings)
    except ConfigError as exc:
        able = [n for n in runnable() if n != settings.backend and _passes(n, settings)]
        hint = f" (one that can: --backend={', --backend='.join(able)})" if able else ""
        raise ConfigError(f"{exc}{hint}") from None
    return cls


def runnable() -> list[str]:
    """The backends this OS can run."""
    return [n for n in BACKENDS if n not in NEEDS_LINUX or hostos.current().linux]


def _passes(name: str, settings: Settings) -> bool:
    try:
        backend_class(name).check_settings(settings)
    except ConfigError:
        return False
    return True
