"""make test's last word on the seed check: in the validator's run (booted with a seed
template that has a fault), every archive's seed check reported the fault as the
template's (xfailed, with the expected key and its line) and the archive still got its
index entry. Usage: python tests/expect_seed_findings.py RUN_FOLDER INDEX KEY.

Exits 1 with one line per subject that does not show it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from harness.checklist import SEED


def problems(run: Path, index: Path, key: str) -> tuple[list[str], list[str]]:
    doc = json.loads((run / "signoff.json").read_text(encoding="utf-8"))
    entries = yaml.safe_load(index.read_text(encoding="utf-8")) if index.exists() else None
    indexed = json.dumps(entries)
    seen, bad = [], []
    subjects = [s["subject"] for s in doc["subjects"]]
    if not subjects:
        bad.append(f"{run}: no subject in signoff.json")
    for subject in subjects:
        seed = [t for t in doc["tests"] if t["subject"] == subject and t["item"] == SEED]
        if len(seed) != 1:
            bad.append(f"{subject}: {len(seed)} seed checks ran, not 1")
            continue
        test = seed[0]
        if test["outcome"] != "xfailed" or f"{key}" not in test["reason"] or "line " not in test["reason"]:
            bad.append(f"{subject}: seed check {test['outcome']}, not xfailed naming {key} "
                       f"with its line: {test['reason'] or '(no message)'}")
        else:
            seen.append(f"{subject}: {test['reason']}")
        archive = Path(next((s.get("archive") or "" for s in doc["subjects"]
                             if s["subject"] == subject), "")).name
        if not archive or archive not in indexed:
            bad.append(f"{subject}: its archive {archive or '(none)'} has no entry in {index}")
    return seen, bad


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    run, index, key = Path(argv[0]), Path(argv[1]), argv[2]
    try:
        seen, bad = problems(run.resolve(), index, key)
    except (OSError, ValueError, KeyError) as exc:
        print(f"expect_seed_findings: cannot read {run}/signoff.json or {index}: {exc}", file=sys.stderr)
        return 1
    for line in seen:
        print(f"seed finding, as expected: {line}")
    for line in bad:
        print(f"expect_seed_findings: {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
