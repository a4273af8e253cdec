"""Errors of the archive side: the GMI zip, the VHDX inside it and the repository index.

They hang off :class:`harness.errors.GmiError`, so every message is one masked line.
"""

from __future__ import annotations

from harness.errors import DiskSpaceError, GmiError


class ArchiveError(GmiError):
    """A GMI archive is unreadable, unsafe or does not match what vmgenie expects."""


class VhdxError(ArchiveError):
    """A VHDX file is not a valid VHDX, or not the kind of VHDX a GMI needs."""


class ArchiveSpaceError(ArchiveError, DiskSpaceError):
    """Not enough free space to extract an archive's disk (also a DiskSpaceError)."""


class RepoIndexError(ArchiveError):
    """The repository index (``gmi-repository.dist.yml``) is malformed or cannot be updated."""
