"""Record what a real ``cloud-init schema -c`` prints for every text the seed check
(harness.media.seed_schema.check) sends for one template: the template itself and the
variants check() validates after it. Each goes to NAME.cloud-init-VV.out or
NAME.PATH=KEY,KEY.cloud-init-VV.out (tests/test_seed_schema.py recording_name()).

Usage (from the repository's root; README.md here says how TREE is made):

    .venv/bin/python tests/data/cloud_init_schema/record.py TREE VV NAME...

TREE: a cloud-init Debian package and its Python dependencies unpacked with
``dpkg-deb -x``; VV: 22 or 25, for the file names; NAME: a NAME.user-data here or a
tests/test_seed_schema.py VMGENIE_NAMES name. Each text is validated as
/tmp/gmi-seed-user-data (the path the seed check uses in the clone, and so in the output)
by the host's /usr/bin/python3 in a mount namespace of its own (``unshare``), with a
/tmp of its own: nothing is installed on the host or left in its /tmp.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository (harness)
sys.path.insert(0, str(HERE.parent))  # tests/ (test_seed_schema)

from test_seed_schema import recording_name, user_data  # noqa: E402

from harness.media import seed_schema  # noqa: E402

RUN = r"""
mount --bind "$1" /mnt && mount -t tmpfs tmpfs /tmp && cat > /tmp/gmi-seed-user-data &&
cd / && PYTHONUNBUFFERED=1 PYTHONPATH=/mnt/usr/lib/python3/dist-packages \
  /usr/bin/python3 /mnt/usr/bin/cloud-init schema -c /tmp/gmi-seed-user-data 2>&1
echo "exit $?"
"""


def main(tree: str, version: str, names: list[str]) -> None:
    root = Path(tree).resolve()
    for name in names:
        text_of = user_data(name)

        def validate(text: str, name: str = name) -> tuple[int, str]:
            out = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", RUN, "sh", str(root)],
                                 input=text, capture_output=True, text=True, check=True).stdout
            file = HERE / f"{recording_name(name, text)}.cloud-init-{version}.out"
            file.write_text(out)
            print(file.name)
            output, _, rc = out.rpartition("exit ")
            return int(rc), output

        for finding in seed_schema.check(text_of, validate):
            print("   ", finding.describe())


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
