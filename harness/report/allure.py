"""Allure: labels that group the results by distro and checklist item, build stages as
steps, evidence as attachments, and the two files Allure reads beside the results
(``environment.properties``, ``categories.json``).

Everything here is a no-op when no Allure results folder is being written (allure-pytest
registers its listener only with ``--alluredir``; the plugin sets it to
``reports/runs/<run>/allure-results`` unless the user chose another). Results of several
runs or CI jobs merge natively: ``allure generate dir1 dir2 ... -o report``.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from allure_commons import hookimpl as allure_hookimpl

RESULTS_DIR = "allure-results"
PARENT_SUITE = "GMI checklist"

# Allure files a result under the first category whose statuses and regexes match its
# message. Infrastructure first: a stage, the clone's boot or a host tool that failed
# says nothing about the image. What is left over and "failed" is an image defect (a
# checklist assertion); "broken" (an unexpected exception) is a harness defect.
CATEGORIES: list[dict[str, Any]] = [
    {"name": "Infrastructure failure (build host, hypervisor, network)",
     "matchedStatuses": ["failed", "broken"],
     "messageRegex": r"(?s).*(stage \w+:|clone:|not found on this host|not enough free space|"
                     r"timed out|[Tt]imeout|QEMU|Hyper-V host|[Cc]onnection (refused|reset)|"
                     r"the hyperv backend).*"},
    {"name": "Export refused (a check did not pass)", "matchedStatuses": ["failed"],
     "messageRegex": r"(?s).*(export refused|no index entry).*"},
    {"name": "Image defect (a checklist item failed)", "matchedStatuses": ["failed"]},
    {"name": "Harness defect (unexpected exception)", "matchedStatuses": ["broken"]},
]


def _hook() -> Any:
    from allure_commons import plugin_manager

    return plugin_manager.hook


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    """An Allure step around a build stage (its start and stop give its duration).
    Outside a test or fixture Allure has nowhere to put it: then it is just skipped."""
    hook, step_id = _hook(), uuid.uuid4().hex
    started = False
    with contextlib.suppress(Exception):
        hook.start_step(uuid=step_id, title=title, params={})
        started = True
    try:
        yield
    except BaseException as exc:
        if started:
            with contextlib.suppress(Exception):
                hook.stop_step(uuid=step_id, exc_type=type(exc), exc_val=exc, exc_tb=exc.__traceback__)
        raise
    if started:
        with contextlib.suppress(Exception):
            hook.stop_step(uuid=step_id, exc_type=None, exc_val=None, exc_tb=None)


def attach_text(text: str, name: str, extension: str = "txt") -> bool:
    """Attach masked text to the current test or fixture; False when Allure is off or
    has no current test or fixture."""
    from allure_commons.types import AttachmentType

    from harness.errors import mask

    kind = {"txt": AttachmentType.TEXT, "yml": AttachmentType.YAML,
            "json": AttachmentType.JSON}.get(extension, AttachmentType.TEXT)
    try:
        results = _hook().attach_data(body=mask(text), name=name, attachment_type=kind,
                                      extension=extension)
    except Exception:
        return False
    return bool(results)


def attach_logs(logdir: Path, manifest: Mapping[str, Any] | None = None) -> int:
    """Attach a build's evidence: serial consoles, the clone's cloud-init logs and
    journal, the rendered seed files and the manifest. Returns how many."""
    import yaml

    from harness.log import clean_console

    count = 0
    for path in sorted(logdir.glob("*")) if logdir.is_dir() else []:
        if not path.is_file():
            continue
        raw = path.read_bytes()
        text = clean_console(raw) if path.name.endswith(".serial.log") else raw.decode("utf-8", "replace")
        ext = "yml" if "-seed-" in path.name else "txt"
        count += attach_text(text, path.name, ext)
    if manifest:
        count += attach_text(yaml.safe_dump(dict(manifest), sort_keys=False), "manifest.yml", "yml")
    return count


def write_environment(results: Path, props: Mapping[str, Any]) -> Path:
    """``environment.properties``: shown on the report's overview page."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / "environment.properties"

    def esc(v: Any) -> str:
        return str(v).replace("\\", "\\\\").replace("\n", " ").replace("=", "\\=").replace(":", "\\:")

    path.write_text("".join(f"{k.replace(' ', '_')}={esc(v)}\n" for k, v in props.items()))
    return path


def write_categories(results: Path) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / "categories.json"
    path.write_text(json.dumps(CATEGORIES, indent=1) + "\n")
    return path


class SecretMasker:
    """Registered with allure-commons: masks every registered secret in results and
    containers before the file logger writes them (Allure takes a failure's message
    from the exception itself, not from the masked pytest report)."""

    def _mask_details(self, executable: Any) -> None:
        from harness.errors import mask

        details = getattr(executable, "statusDetails", None)
        if details is not None:
            details.message = mask(details.message) if details.message else details.message
            details.trace = mask(details.trace) if details.trace else details.trace
        for child in [*getattr(executable, "steps", []), *getattr(executable, "befores", []),
                      *getattr(executable, "afters", [])]:
            self._mask_details(child)

    @allure_hookimpl(tryfirst=True)
    def report_result(self, result: Any) -> None:
        self._mask_details(result)

    @allure_hookimpl(tryfirst=True)
    def report_container(self, container: Any) -> None:
        self._mask_details(container)


def register_masker() -> None:
    """Once per process; runs before allure's own file logger (tryfirst)."""
    from allure_commons import plugin_manager

    if plugin_manager.get_plugin("gmi-secret-masker") is None:
        plugin_manager.register(SecretMasker(), "gmi-secret-masker")
