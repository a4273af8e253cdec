"""vmgenie's archive layout, each word spelled once: the manifest's keys and the folder
names inside ``GMI-<Os>-<Version>.zip`` (the layout of a Hyper-V export)."""

# vmgenie's manifest keys, exactly and in its order.
MANIFEST_KEYS = (
    "gmi_version", "os", "version", "created", "updated", "vm_name", "hyperv_generation",
    "maintainer", "maintainer_email", "source_url", "description", "checksum_sha256",
)
VM_DIR = "Virtual Machines"
SNAP_DIR = "Snapshots"
VHD_DIR = "Virtual Hard Disks"
