"""The procedure's validation checklist (section 5): the items every GMI must pass,
each named once. ``checks/`` labels its tests with them, the export gate requires
each required item to have a passing test, and the sign-off page has a row per item."""

from __future__ import annotations

import re
from pathlib import Path

from harness import shipped

BOOTS = "boots with no errors"
DHCP = "DHCP assigns an IPv4 address on eth0"
CLOUD_INIT = "cloud-init ran on first boot"
SERVICES = "integration services installed and set to start"
SERVICES_RUNNING = "integration services running (Hyper-V)"
NO_LEFTOVERS = "no leftover build artifacts"
# The seed check (checks/test_seed.py): the clone's seed against the clone's own
# cloud-init schema. A fault there is the seed template's, not the image's: it has its
# own row on the sign-off page and blocks nothing unless --seed-template-blocks-export.
SEED = "seed passes the clone's cloud-init schema (the seed's fault, not the image's)"
# The release evidence (harness/evidence): the SBOMs in the archive list exactly the
# packages the clone has installed.
SBOM = "the SBOMs list every installed package"
# The static checks of an existing archive (checks/test_archive.py, --gmi only): what
# vmgenie's import looks at, each its own row on the sign-off page.
ARCHIVE_NAME = "archive: name"
ARCHIVE_ENTRIES = "archive: zip entries"
ARCHIVE_MANIFEST = "archive: manifest"
ARCHIVE_LAYOUT = "archive: layout"
ARCHIVE_DISK = "archive: disk"
ARCHIVE_ITEMS = (ARCHIVE_NAME, ARCHIVE_ENTRIES, ARCHIVE_MANIFEST, ARCHIVE_LAYOUT, ARCHIVE_DISK)

# Each must have a passing test before an image is exported (the gate).
REQUIRED_ITEMS = (BOOTS, DHCP, CLOUD_INIT, SERVICES, NO_LEFTOVERS)
# Every item a check may be labelled with; a label outside this list is a typo.
ITEMS = (BOOTS, DHCP, CLOUD_INIT, SERVICES, SERVICES_RUNNING, NO_LEFTOVERS, SEED, SBOM, *ARCHIVE_ITEMS)
# Items whose failures block the export (and the sign-off verdict) only when the run's
# settings say so.
ADVISORY_ITEMS = (SEED,)


CHECKS_DIR = shipped("checks")


def labels_from_source(checks: Path = CHECKS_DIR) -> dict[str, str]:
    """test function -> checklist item, read from the ``@checklist(item.NAME)`` (or
    ``@checklist("...")``) lines of the checks' source: for junit.xml files written
    before each test case carried its item as a property."""
    labels: dict[str, str] = {}
    for path in sorted(checks.glob("test_*.py")):
        item = None
        for line in path.read_text().splitlines():
            m = re.match(r"""^@checklist\((?:["'](.+)["']|item\.(\w+))\)""", line)
            if m:
                named = globals().get(m[2] or "")
                item = m[1] or (named if isinstance(named, str) else None)
            elif line.startswith("def ") and item is not None:
                labels[line[4:].split("(")[0]] = item
                item = None
            elif not line.startswith("@"):
                item = None
    return labels
