"""Benchmark: a whole build (build, checks and export) through the real pytest run,
cold and warm, with per-stage figures.

    flock /tmp/gmi-vm.lock .venv/bin/python benchmarks/build.py --cold 1 --warm 1
    flock /tmp/gmi-vm.lock .venv/bin/python benchmarks/build.py --cold 0 --warm 1 --pair debian-13
    .venv/bin/python benchmarks/build.py --from reports/bench/cold-1   # figures of a past run

Each run is ``pytest checks --distro=D`` into a folder of its own under ``--out``. A
cold run first empties this machine's caches for the distro (debootstrap's package
cache for its suite, Step 1's apt packages and its kept trees (``--incremental``), the
package cache's folder (``--package-cache``), the accelerator verdict); a warm run
keeps what the runs before it left. Nothing is measured twice: the figures come from
what the run itself wrote (the archive's ``gmi-build-record.yml``, the run's
``signoff.json`` and ``build.log``):

- wall seconds per stage, and how much of it was real work (guest commands, waits for
  a boot, host tools such as debootstrap and qemu-img: the record's ``work_seconds``);
  the rest is the harness's own overhead;
- bytes downloaded (apt's "Fetched" lines, and the packages debootstrap retrieved);
- peak scratch, the guest filesystem's used bytes, VHDX and zip size;
- the clone's boot to SSH and to cloud-init done;
- the export (the zip's deflate) apart from the checks.

``--pair D2``: after those runs, D2 alone (warm) and then both side by side with
``-n 2``, back to back; prints each one's wall time and the ratio of the pair to the
slower one alone (target 1.3). ``--pair-vm-cpus N`` gives every VM of the pair run N
vCPUs (two builds on two cores: 1 each).

Writes ``benchmark.json`` and ``benchmark.md`` (a Markdown table) into ``--out`` and
prints the table. Asserts nothing: targets are printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("provision", "update", "cloud_init", "hyperv", "cleanup", "seal", "clone")
GB = 1e9
# The issues' targets (#14, #23), printed beside the figures.
TARGETS = {"cold_wall_s": 6 * 60, "warm_wall_s": 3 * 60, "overhead_pct": 3.0,
           "vhdx_per_used": 1.10, "scratch_per_vhdx": 2.0, "pair_ratio": 1.3}
_FETCHED = re.compile(r"Fetched (?P<n>[\d.,]+) (?P<unit>[kMG]?B) in ")
_UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}
_STEP = re.compile(r"^\S+ == (?P<name>[^:]+?)(?::.*)?$")
_RETRIEVING = re.compile(r"I: Retrieving (?P<pkg>\S+) (?P<ver>\S+)$")
AFTER = ("checks", "export")  # after the stages: the checklist on the clone, the zip


class BenchError(Exception):
    """A run folder cannot be read, or the build failed."""


@dataclass
class RunFigures:
    label: str
    folder: str
    mode: str
    wall_s: float
    exit_code: int
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    sizes: dict[str, float] = field(default_factory=dict)
    clone: dict[str, float] = field(default_factory=dict)
    downloaded_bytes: int = 0
    # what the run's package cache fetched from the mirrors (None: the run had none)
    mirror_bytes: int | None = None
    packages: int = 0
    accel: str = ""
    load: dict[str, float] = field(default_factory=dict)  # the host's 1-min load average


# ----------------------------------------------------------------- reading one run


def find_one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if not found:
        raise BenchError(f"{folder}: no {pattern} (did the build finish and export?)")
    return found[-1]


def build_record(archive: Path) -> dict[str, Any]:
    with zipfile.ZipFile(archive) as zf:
        name = next((n for n in zf.namelist() if n.endswith("gmi-build-record.yml")), None)
        if name is None:
            raise BenchError(f"{archive} has no gmi-build-record.yml")
        record: dict[str, Any] = yaml.safe_load(zf.read(name))
    return record


def record_from_run(signoff: Mapping[str, Any], build_log: Path) -> dict[str, Any]:
    """The figures of a build record, from a run that wrote no archive."""
    subject = (signoff.get("subjects") or [{}])[0]
    record: dict[str, Any] = {"stage_durations": subject.get("timings", {}),
                              "sizes": subject.get("sizes", {}), "accel": subject.get("accel", "")}
    lines = build_log.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if line.endswith("$ used bytes") and i + 1 < len(lines) and lines[i + 1].split()[-1].isdigit():
            record["fs_used_bytes"] = int(lines[i + 1].split()[-1])
        m = re.search(r" debootstrap --arch=\S+ .* (\S+) \S+ \S+$", line)
        if m:
            record["installed_by"] = f"debootstrap {m[1]}"
    return record


def fetched_per_stage(build_log: Path) -> dict[str, int]:
    """Bytes apt fetched, per stage, from build.log's ``Fetched N MB in`` lines."""
    per: dict[str, int] = {}
    stage = "other"
    for line in build_log.read_text(errors="replace").splitlines():
        m = _STEP.match(line)
        if m and " done in " not in line and " FAILED in " not in line:
            stage = m["name"]
            continue
        f = _FETCHED.search(line)
        if f:
            n = float(f["n"].replace(",", ""))
            per[stage] = per.get(stage, 0) + int(n * _UNITS[f["unit"]])
    return per


def debootstrap_retrieved(build_log: Path, cache: Path) -> int:
    """Bytes of the packages debootstrap downloaded (its ``I: Retrieving`` lines, sized
    from the .deb files it left in its cache)."""
    total = 0
    for line in build_log.read_text(errors="replace").splitlines():
        m = _RETRIEVING.search(line)
        if m:
            version = m["ver"].replace(":", "%3a")
            for deb in cache.glob(f"{m['pkg']}_{version}_*.deb"):
                total += deb.stat().st_size
                break
    return total


def read_run(folder: Path, label: str = "", mode: str = "", wall_s: float | None = None,
             exit_code: int = 0, cache_root: Path | None = None) -> RunFigures:
    """The figures of one finished run folder (the ``--out`` of a pytest run)."""
    signoff_file = find_one(folder, "runs/*/signoff.json")
    signoff = json.loads(signoff_file.read_text())
    build_log = find_one(signoff_file.parent, "logs/*/build.log")
    archives = sorted(folder.glob("GMI-*.zip"))
    archive = archives[-1] if archives else None
    # A run whose checks failed writes no archive: what it did is in signoff.json and build.log
    record = build_record(archive) if archive else record_from_run(signoff, build_log)
    if not archive and exit_code == 0:
        exit_code = 1
    durations: dict[str, float] = record.get("stage_durations", {})
    work: dict[str, dict[str, float]] = record.get("work_seconds", {})
    fetched = fetched_per_stage(build_log)
    if cache_root is not None:
        suite = record.get("installed_by", "").split(" ")[1:2]
        if suite:
            fetched["provision"] = fetched.get("provision", 0) + debootstrap_retrieved(
                build_log, cache_root / "debootstrap" / suite[0])
    run_wall = float(signoff["run"].get("wall_seconds") or 0.0)
    fig = RunFigures(label or folder.name, str(folder), mode or "?",
                     wall_s if wall_s is not None else run_wall, exit_code,
                     accel=str(record.get("accel", "")))
    for stage in STAGES:
        if stage == "clone":
            wall = sum(v for k, v in durations.items() if k.startswith("clone:"))
        else:
            wall = float(durations.get(stage, 0.0))
        if not wall:
            continue
        w = work.get(stage)
        done = sum(w.values()) if w else None
        fig.stages[stage] = {
            "wall_s": round(wall, 1),
            # (step timings are rounded to 0.1 s: an overhead below that shows as 0)
            **({"work_s": round(done, 1), "overhead_s": round(max(wall - done, 0.0), 1),
                "overhead_pct": round(100 * max(wall - done, 0.0) / wall, 1)}
               if done is not None else {}),
            **{f"{k}_s": round(v, 1) for k, v in (w or {}).items()},
            "downloaded_bytes": fetched.get(stage, 0),
        }
    built = sum(s["wall_s"] for s in fig.stages.values())
    subject = (signoff.get("subjects") or [{}])[0]
    export = float(subject.get("timings", {}).get("export", 0.0))
    fig.stages["checks"] = {"wall_s": round(max(run_wall - built - export, 0.0), 1)}
    if export:
        fig.stages["export"] = {"wall_s": round(export, 1)}
    fig.downloaded_bytes = sum(fetched.values())
    cache_file = signoff_file.parent / "package-cache.json"
    if cache_file.is_file():
        fig.mirror_bytes = int(json.loads(cache_file.read_text()).get("fetched_bytes", 0))
    sizes = record.get("sizes", {})
    used = float(record.get("fs_used_bytes", 0))
    vhdx = float(sizes.get("vhdx_bytes", 0))
    scratch = float(record.get("scratch_peak_bytes", 0))
    fig.sizes = {"fs_used_bytes": used, "vhdx_bytes": vhdx,
                 "zip_bytes": float(archive.stat().st_size) if archive else 0.0,
                 "scratch_peak_bytes": scratch,
                 "build_disk_allocated_bytes": float(sizes.get("build_disk_allocated", 0)),
                 "vhdx_per_used": round(vhdx / used, 3) if used else 0.0,
                 "scratch_per_vhdx": round(scratch / vhdx, 3) if vhdx else 0.0}
    fig.clone = {"boot_to_ssh_s": float(durations.get("clone: boot to SSH", 0.0)),
                 "cloud_init_done_s": float(durations.get("clone: cloud-init done", 0.0)),
                 "boot_seconds_record": float(record.get("clone_boot_seconds", 0.0))}
    fig.packages = len(record.get("packages", []))
    return fig


# ----------------------------------------------------------------- running builds


def empty_caches(cache_root: Path, suite: str) -> list[str]:
    """What a cold run must not find: this suite's package caches and Step 1 trees
    (--incremental), the accel verdict."""
    gone = []
    for path in (cache_root / "debootstrap" / suite, cache_root / "apt" / suite,
                 *sorted((cache_root / "trees").glob(f"{suite}-*.tar.zst")),
                 cache_root / "apt-cacher-ng",
                 cache_root / "host-verdicts.json"):
        if path.is_dir():
            shutil.rmtree(path)
            gone.append(str(path))
        elif path.exists():
            path.unlink()
            gone.append(str(path))
    return gone


def run_build(distro: str | Sequence[str], out: Path, scratch: Path,
              extra: Sequence[str]) -> tuple[float, int, dict[str, float]]:
    """Run the build; returns its wall seconds, exit code and the host's load average
    over the run (sampled every 10 s: other work on the machine shows in the figures).
    Several distros: side by side, one xdist worker each."""
    distros = [distro] if isinstance(distro, str) else list(distro)
    side = ["-n", str(len(distros))] if len(distros) > 1 else []
    cmd = [sys.executable, "-m", "pytest", "checks", *(f"--distro={d}" for d in distros), *side,
           f"--out={out}", f"--scratch={scratch}", "-p", "no:cacheprovider", "-q", *extra]
    print("$", " ".join(cmd), flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    loads = []
    while True:
        try:
            proc.wait(10)
            break
        except subprocess.TimeoutExpired:
            loads.append(os.getloadavg()[0])
    load = {"mean": round(statistics.mean(loads), 2), "max": round(max(loads), 2)} if loads else {}
    return round(time.monotonic() - start, 1), proc.returncode, load


# ----------------------------------------------------------------- the table


def _median(values: Iterable[float]) -> float:
    vals = [v for v in values]
    return statistics.median(vals) if vals else 0.0


def summarize(runs: Sequence[RunFigures]) -> dict[str, dict[str, Any]]:
    """Per mode (cold, warm): the median of each figure over its runs."""
    modes: dict[str, dict[str, Any]] = {}
    for mode in dict.fromkeys(r.mode for r in runs):
        group = [r for r in runs if r.mode == mode]
        stages: dict[str, dict[str, float]] = {}
        for name in [*STAGES, *AFTER]:
            have = [r.stages[name] for r in group if name in r.stages]
            if have:
                keys = dict.fromkeys(k for h in have for k in h)
                stages[name] = {k: round(_median(h[k] for h in have if k in h), 1) for k in keys}
        work = [sum(s.get("work_s", 0.0) for n, s in r.stages.items()) for r in group]
        walls = [sum(s["wall_s"] for n, s in r.stages.items() if n not in AFTER)
                 for r in group]
        has_work = all(all("work_s" in s for n, s in r.stages.items() if n not in AFTER)
                       for r in group)
        modes[mode] = {
            "runs": len(group), "wall_s": _median(r.wall_s for r in group),
            "stages": stages,
            "overhead_pct": (round(100 * (_median(walls) - _median(work)) / _median(walls), 1)
                             if has_work and walls else None),
            "downloaded_bytes": _median(r.downloaded_bytes for r in group),
            "mirror_bytes": (_median(r.mirror_bytes or 0 for r in group)
                             if all(r.mirror_bytes is not None for r in group) else None),
            "sizes": {k: _median(r.sizes[k] for r in group) for k in group[0].sizes},
            "clone": {k: _median(r.clone[k] for r in group) for k in group[0].clone},
            "packages": group[0].packages,
            "load_mean": _median(r.load.get("mean", 0.0) for r in group) or None,
        }
    return modes


def _s(v: float | None) -> str:
    return "" if v is None else f"{v:.0f}"


def _gb(v: float) -> str:
    return f"{v / GB:.2f}" if v else "n/a"


def _n(v: float) -> str:
    return f"{v:.2f}" if v else "n/a"


def markdown(summary: Mapping[str, Mapping[str, Any]], machine: str) -> str:
    modes = list(summary)
    head = "| stage | " + " | ".join(
        f"{m}: wall s | {m}: work s | {m}: overhead % | {m}: downloaded MB" for m in modes) + " |"
    lines = [f"Median of each mode's runs; {machine}.", "", head,
             "|---|" + "---|---|---|---|" * len(modes)]
    for stage in [*STAGES, *AFTER]:
        cells = []
        for m in modes:
            st = summary[m]["stages"].get(stage, {})
            dl = st.get("downloaded_bytes")
            cells += [_s(st.get("wall_s")), _s(st.get("work_s")),
                      "" if st.get("overhead_pct") is None else f"{st['overhead_pct']:.1f}",
                      "" if dl is None else f"{dl / 1e6:.0f}"]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    cells = []
    for m in modes:
        s = summary[m]
        cells += [_s(s["wall_s"]), "", "" if s["overhead_pct"] is None else f"{s['overhead_pct']:.1f}",
                  f"{s['downloaded_bytes'] / 1e6:.0f}"]
    lines.append("| **total (build, checks, export)** | " + " | ".join(cells) + " |")
    lines += ["", "| figure | " + " | ".join(modes) + " | target |", "|---|" + "---|" * len(modes) + "---|"]
    rows = [
        ("wall, build + checks + export (s)", lambda s: _s(s["wall_s"]),
         f"cold <= {TARGETS['cold_wall_s']}, warm <= {TARGETS['warm_wall_s']}"),
        ("harness overhead in the stages (%)",
         lambda s: "n/a" if s["overhead_pct"] is None else f"{s['overhead_pct']:.1f}",
         f"<= {TARGETS['overhead_pct']}"),
        ("guest filesystem used (GB)", lambda s: _gb(s["sizes"]["fs_used_bytes"]), ""),
        ("VHDX (GB)", lambda s: _gb(s["sizes"]["vhdx_bytes"]), ""),
        ("VHDX / used", lambda s: _n(s["sizes"]["vhdx_per_used"]), f"<= {TARGETS['vhdx_per_used']}"),
        ("zip (GB)", lambda s: _gb(s["sizes"]["zip_bytes"]), ""),
        ("peak scratch (GB)", lambda s: _gb(s["sizes"]["scratch_peak_bytes"]), ""),
        ("peak scratch / VHDX", lambda s: _n(s["sizes"]["scratch_per_vhdx"]),
         f"<= {TARGETS['scratch_per_vhdx']}"),
        ("downloaded by apt and debootstrap (MB)", lambda s: f"{s['downloaded_bytes'] / 1e6:.0f}", ""),
        ("of it fetched from the mirrors by the package cache (MB)",
         lambda s: "no cache" if s.get("mirror_bytes") is None else f"{s['mirror_bytes'] / 1e6:.0f}",
         "warm: 0"),
        ("clone: boot to SSH (s)", lambda s: _s(s["clone"]["boot_to_ssh_s"]), ""),
        ("clone: cloud-init done after SSH (s)", lambda s: _s(s["clone"]["cloud_init_done_s"]), ""),
        ("packages in the build record", lambda s: str(s["packages"] or "n/a"), "same in every mode"),
        ("host load average during the run", lambda s: "" if s["load_mean"] is None
         else f"{s['load_mean']:.1f}", "2 cores: above 2 means waiting for CPU"),
    ]
    for name, cell, target in rows:
        lines.append(f"| {name} | " + " | ".join(cell(summary[m]) for m in modes) + f" | {target} |")
    return "\n".join(lines) + "\n"


def run_pair(args: argparse.Namespace, runs: Sequence[RunFigures]) -> dict[str, Any]:
    """``--pair``: each distro alone (warm), then both side by side with ``-n 2``, back
    to back; the ratio of the pair's wall time to the slower one alone."""
    from harness import distro as distro_mod

    walls: dict[str, float] = {}
    loads: dict[str, Any] = {}
    warm = [r for r in runs if r.mode == "warm" and r.exit_code == 0]
    if warm:  # (the warm run just before stands for the first distro alone)
        walls[args.distro], loads[args.distro] = warm[-1].wall_s, warm[-1].load.get("mean")
    suite = distro_mod.load(args.pair).install.suite
    if not list((args.cache / "trees").glob(f"{suite}-*.tar.zst")):
        print(f"pair: {args.pair} first, to keep its Step 1 tree (not measured)", flush=True)
        run_build(args.pair, args.out / "pair-warmup", args.scratch, args.pytest_args)
    for d in (args.distro, args.pair):
        if d not in walls:
            wall, rc, load = run_build(d, args.out / f"alone-{d}", args.scratch, args.pytest_args)
            if rc != 0:
                raise BenchError(f"{d} alone failed (exit {rc}): see {args.out / f'alone-{d}'}")
            walls[d], loads[d] = wall, load.get("mean")
    cpus = [f"--vm-cpus={args.pair_vm_cpus}"] if args.pair_vm_cpus else []
    wall, rc, load = run_build([args.distro, args.pair], args.out / "pair", args.scratch,
                               [*cpus, *args.pytest_args])
    slower = max(walls.values())
    return {"alone_s": walls, "alone_load_mean": loads, "pair_s": wall, "pair_exit": rc,
            "pair_load_mean": load.get("mean"), "pair_vm_cpus": args.pair_vm_cpus or "default",
            "ratio": round(wall / slower, 2) if slower else None,
            "target": TARGETS["pair_ratio"]}


def pair_markdown(pair: Mapping[str, Any]) -> str:
    lines = ["", "| side by side (-n 2) | wall s | load average |", "|---|---|---|"]
    for d, wall in pair["alone_s"].items():
        load = pair["alone_load_mean"].get(d)
        lines.append(f"| {d} alone | {wall:.0f} | {'' if load is None else f'{load:.1f}'} |")
    load = pair["pair_load_mean"]
    lines.append(f"| both, -n 2 (vCPUs per VM: {pair['pair_vm_cpus']}) | {pair['pair_s']:.0f} | "
                 f"{'' if load is None else f'{load:.1f}'} |")
    lines.append(f"| **pair / slower alone** | **{pair['ratio']}** | target <= {pair['target']} |")
    return "\n".join(lines) + "\n"


def machine_line() -> str:
    cpus = os.cpu_count() or 0
    kvm = "KVM device present" if os.path.exists("/dev/kvm") else "no /dev/kvm"
    return f"{platform.node()}, {cpus} CPUs, {kvm}, {datetime.now(UTC):%Y-%m-%d}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--distro", default="debian-12")
    ap.add_argument("--cold", type=int, default=1, metavar="N", help="cold runs (caches emptied first)")
    ap.add_argument("--warm", type=int, default=1, metavar="N", help="warm runs (after the cold ones)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    ap.add_argument("--scratch", type=Path, default=Path("/var/tmp/gmi-bench"))
    ap.add_argument("--cache", type=Path, default=Path("~/.cache/gmi-harness").expanduser(),
                    help="the harness's cache folder (emptied for the distro before a cold run)")
    ap.add_argument("--from", dest="folders", type=Path, nargs="+", default=[], metavar="DIR",
                    help="read these finished runs' --out folders instead of building "
                         "(label: the folder name; mode: its prefix before '-')")
    ap.add_argument("--pair", metavar="DISTRO2",
                    help="then DISTRO2 alone and both side by side (-n 2), back to back")
    ap.add_argument("--pair-vm-cpus", type=int, default=0, metavar="N",
                    help="vCPUs of every VM in the side-by-side run (default: the harness's)")
    ap.add_argument("pytest_args", nargs="*", help="after --: more pytest arguments")
    args = ap.parse_args(argv)
    from harness import distro as distro_mod

    suite = distro_mod.load(args.distro).install.suite
    runs: list[RunFigures] = []
    try:
        if args.folders:
            for folder in args.folders:
                runs.append(read_run(folder, folder.name, folder.name.split("-")[0],
                                     cache_root=args.cache))
        else:
            plan = [("cold", i + 1) for i in range(args.cold)] + [("warm", i + 1) for i in range(args.warm)]
            for mode, i in plan:
                out = args.out / f"{mode}-{i}"
                if out.exists():
                    shutil.rmtree(out)
                if mode == "cold":
                    gone = empty_caches(args.cache, suite)
                    print(f"cold: emptied {', '.join(gone) or 'nothing (no caches yet)'}", flush=True)
                wall, rc, load = run_build(args.distro, out, args.scratch, args.pytest_args)
                fig = read_run(out, f"{mode}-{i}", mode, wall, rc, cache_root=args.cache)
                fig.load = load
                runs.append(fig)
                print(f"{mode}-{i}: {wall:.0f} s, exit {rc}", flush=True)
                if rc != 0:  # (the figures of a failed build measure the failure: stop)
                    print(f"{mode}-{i} failed: see {out}; no more runs", flush=True)
                    break
        ok = all(r.exit_code == 0 for r in runs)
        pair = run_pair(args, runs) if args.pair and not args.folders and ok else None
    except BenchError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 2
    summary = summarize(runs) if runs else {}
    machine = machine_line()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark.json").write_text(json.dumps(
        {"machine": machine, "distro": args.distro, "summary": summary,
         "runs": [r.__dict__ for r in runs], "pair": pair}, indent=1) + "\n")
    table = (markdown(summary, machine) if summary else f"{machine}\n") + (
        pair_markdown(pair) if pair else "")
    (args.out / "benchmark.md").write_text(table)
    print(table)
    return 0 if all(r.exit_code == 0 for r in runs) and (pair is None or pair["pair_exit"] == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
