"""The hypervisor backends, and their table (a backend's module is imported only when
it is chosen, as pytest-testinfra does): ``base`` holds the interface, each backend
has a folder of its own."""

from __future__ import annotations

import importlib

from harness.backends.base import Backend
from harness.errors import ConfigError

BACKENDS = {
    "qemu": "harness.backends.qemu:QemuBackend",
    "hyperv": "harness.backends.hyperv:HyperVBackend",
}


def backend_class(name: str) -> type[Backend]:
    """The class of backend ``name`` (for what needs no instance: host preparation,
    the janitor); an unknown name lists the known ones."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}"
        ) from None
    module_name, _, cls_name = target.partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), cls_name)
    return cls


def get_backend(name: str) -> Backend:
    """Instantiate the backend ``name``; an unknown name lists the known ones."""
    return backend_class(name)()
