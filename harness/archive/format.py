"""vmgenie's archive layout, each word spelled once: the manifest's keys, the folder
names inside ``GMI-<Os>-<Version>.zip`` (the layout of a Hyper-V export) and the
harness's own entry beside them, the build record. Imports nothing: any layer may
spell these words from here."""

# vmgenie's manifest keys, exactly and in its order.
MANIFEST_KEYS = (
    "gmi_version", "os", "version", "created", "updated", "vm_name", "hyperv_generation",
    "maintainer", "maintainer_email", "source_url", "description", "checksum_sha256",
)
VM_DIR = "Virtual Machines"
SNAP_DIR = "Snapshots"
VHD_DIR = "Virtual Hard Disks"
# The harness's build record (what was built, how, and what the checks found), read
# back by harness.archive.reader.build_record only.
RECORD_ENTRY = "gmi-build-record.yml"
