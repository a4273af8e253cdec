"""The build stages, in the procedure's order. Each is a plain function
``stage(build)`` that can run outside pytest; ``stages.fixtures`` wraps each in a thin
session-scoped fixture.

1. provision        Step 1: a new VM with a fresh install (backend's job); or, with
                    --prepare=chroot, the fresh install as a root tree on the host
2. update           Step 2: update, upgrade, autoremove, clean; sudo for the admin
3. cloud_init       Step 3: cloud-init installed, restricted to NoCloud and None
4. hyperv           Step 4: Hyper-V daemons, hv modules in the initramfs, eth0, EFI fallback
5. cleanup          Step 5: journal, GRUB timeout, caches and artifacts, free space
6. seal             Step 6: cloud-init clean, lock and scrub, power off, compact to VHDX
                    (in a root tree: the same scrub there, then the disk made from it)

Every stage runs the same over SSH and in the chroot: with --prepare=chroot the image
never boots before the checks' clone does.

(``--gmi`` runs none of them: the archive's disk is read instead, and with ``--promote``
``s6_promote.promote`` wraps it in a Hyper-V VM exported unbooted.)
"""

from __future__ import annotations

from .s1_provision import provision
from .s2_update import update
from .s3_cloud_init import cloud_init
from .s4_hyperv import hyperv
from .s5_cleanup import cleanup
from .s6_seal import seal

ORDER = (provision, update, cloud_init, hyperv, cleanup, seal)

__all__ = ["ORDER", "cleanup", "cloud_init", "hyperv", "provision", "seal", "update"]
