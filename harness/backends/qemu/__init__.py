"""The local QEMU backend (the embedded default): really builds and boots images."""

from harness.backends.qemu.backend import QemuBackend

__all__ = ["QemuBackend"]
