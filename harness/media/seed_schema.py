"""The seed check: the user-data a clone was booted with, validated by the clone's own
cloud-init (``cloud-init schema -c FILE``), each fault a finding with its key and line.

What ``cloud-init schema`` prints differs between versions (read from the real output
of 22.4.2, Debian 12, and 25.1.4, Debian 13; recorded in ``tests/data/cloud_init_schema/``):

- errors: ``Cloud config schema errors: PATH: MESSAGE, PATH: MESSAGE`` (after ``Error:``
  on the same line or the line before); deprecations likewise after ``Cloud config
  schema deprecations:``. A PATH is dotted (``users.1``), or ``format-lN.cM`` when the
  file is not YAML or lacks its ``#cloud-config`` header.
- a key cloud-init does not know is ``Additional properties are not allowed ('home' was
  unexpected)`` at the mapping's path (25.1), while 22.4 only says the whole mapping ``is
  not valid under any of the given schemas``; 25.1 adds one ``{...} is not of type
  'array'`` per other form the entry could have had, which say nothing new.
- cloud-init stops looking inside a mapping once it has an unknown key, so a
  deprecated key beside it shows only once the unknown key is gone: :func:`check`
  therefore validates again without the unknown keys, until nothing new appears.
- where cloud-init names no key (22.4's ``is not valid under any of the given schemas``),
  :func:`check` finds the keys at fault itself, by validating the entry rebuilt one key
  at a time (:func:`isolate`). Removing one key at a time would not do: 22.4 knows
  neither ``home`` nor ``ssh-authorized-keys``, so vmgenie's templates have two keys at
  fault in the same entry and the entry stays invalid without either one alone.

Line numbers are looked up in the user-data itself (placeholders fill single lines, so
they are the template's line numbers too).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from harness.errors import GmiError

ENDS = ("Error:", "Invalid ", "Valid schema", "Cloud config schema")  # lines after a block
MARKERS = {"Cloud config schema errors: ": "error", "Cloud config schema deprecations: ": "deprecated"}
FORMAT_PATH = re.compile(r"^format-l(\d+)\.c(\d+)$")
PROBLEM_START = re.compile(r", (?=([A-Za-z0-9_.\-]+): )")
UNKNOWN_KEYS = re.compile(r"^Additional properties are not allowed \((.*) (?:was|were) unexpected\)$")
# What cloud-init logs at boot (its recoverable errors) about a user-data that fails
# its schema: 25.1 "user-data failed schema validation! ...", 23.x-24.x "Invalid
# cloud-config provided: ...", deprecations "Deprecated cloud-config provided: ...".
SCHEMA_COMPLAINT = re.compile(r"^(?:user-data failed schema validation|Invalid cloud-config provided|"
                              r"Deprecated cloud-config provided|cloud-config failed schema validation)")


@dataclass(frozen=True)
class Finding:
    """One fault cloud-init's schema finds in the user-data."""

    key: str  # dotted, as cloud-init names it (users.1.home); "(file)" for the file itself
    line: int | None
    kind: str  # error | deprecated
    message: str

    def describe(self, file: str = "user-data") -> str:
        where = f"{file} line {self.line}" if self.line else file
        return f"{self.key} ({where}): {self.kind}: {self.message}"


# ------------------------------------------------------------------------ parsing


# A block's marker glued to the end of another line: cloud-init writes errors to stderr
# and deprecations to stdout, and an SSH channel that merges the two pipes may put one
# between another's message and its newline (seen in CI: "...given schemasCloud config
# schema deprecations: "). Guest.run now sends stderr into stdout's pipe in the guest
# (exec 2>&1), so the writes keep their order; the parser does not rely on that.
GLUED = re.compile(r"(?<=[^\n])(?=(?:" + "|".join(re.escape(m) for m in MARKERS) + r"))")


def parse_output(text: str) -> list[tuple[str, str, str]]:
    """``(kind, path, message)`` for every problem ``cloud-init schema`` printed."""
    problems: list[tuple[str, str, str]] = []
    lines = GLUED.sub("\n", text).splitlines()
    for i, line in enumerate(lines):
        for marker, kind in MARKERS.items():
            at = line.find(marker)
            if at < 0:
                continue
            body = [line[at + len(marker):]]
            for more in lines[i + 1:]:
                if more == "" or more.startswith(ENDS):
                    break
                body.append(more)
            for path, message in _split("\n".join(body).strip()):
                if (kind, path, message) not in problems:
                    problems.append((kind, path, message))
    return problems


def _split(body: str) -> list[tuple[str, str]]:
    """``PATH: MESSAGE, PATH: MESSAGE`` into pairs (a message may hold ", word: ")."""
    if not body:
        return []
    starts = [0] + [m.start() + 2 for m in PROBLEM_START.finditer(body)]
    pieces = [body[a:b].removesuffix(", ") for a, b in zip(starts, [*starts[1:], len(body)], strict=True)]
    pairs: list[tuple[str, str]] = []
    for piece in pieces:
        path, sep, message = piece.partition(": ")
        if pairs and (not sep or not _looks_like_path(path)):
            pairs[-1] = (pairs[-1][0], f"{pairs[-1][1]}, {piece}")
        else:
            pairs.append((path.strip(), message.strip()))
    return pairs


DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*")


def _looks_like_path(path: str) -> bool:
    return bool(FORMAT_PATH.match(path) or DOTTED.fullmatch(path))


def _split_repr(message: str) -> tuple[str, str]:
    """A message that starts with the offending value's Python repr (``{'name': ...} is
    not ...``): the repr and the rest; else ``("", message)``."""
    if not message or message[0] not in "{[":
        return "", message
    depth, quote, i = 0, "", 0
    while i < len(message):
        ch = message[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return message[:i + 1], message[i + 1:].strip()
        i += 1
    return "", message


# ------------------------------------------------------------------------ findings


def line_of(text: str, path: str) -> int | None:
    """The 1-based line of ``path`` (dotted keys and list indexes) in the YAML ``text``:
    the key's line, or the deepest part of the path found."""
    m = FORMAT_PATH.match(path)
    if m:
        return int(m.group(1))
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in path.split(".") if path else []:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def unknown_keys(message: str) -> list[str]:
    """The keys an ``Additional properties are not allowed (...)`` message names."""
    m = UNKNOWN_KEYS.match(message)
    return re.findall(r"'([^']*)'", m.group(1)) if m else []


def findings(problems: Iterable[tuple[str, str, str]], text: str) -> list[Finding]:
    """Problems as findings: one per unknown key, lines from ``text``, and without the
    "is not of type" echoes of a mapping's other possible forms when cloud-init said
    what is wrong with it."""
    problems = list(problems)
    specific = {path for _, path, msg in problems if not _split_repr(msg)[0]}
    out: list[Finding] = []
    for kind, path, message in problems:
        value, rest = _split_repr(message)
        if value and path in specific:
            continue  # an echo of another form the entry could have had
        keys = unknown_keys(message)
        if keys:
            for key in keys:
                full = path if path.rsplit(".", 1)[-1] == key else ".".join(filter(None, (path, key)))
                out.append(Finding(full, line_of(text, full), kind, f"unknown key {key!r}: {message}"))
            continue
        if value:
            message = f"this {'mapping' if value.startswith('{') else 'list'} {rest}"
        key = "(file)" if FORMAT_PATH.match(path) else path
        out.append(Finding(key, line_of(text, path), kind, " ".join(message.split())))
    return list(dict.fromkeys(out))


def _node_at(data: Any, path: str) -> Any:
    """The value at the dotted ``path`` (keys and list indexes) in loaded YAML, or None."""
    node = data
    for part in path.split(".") if path else []:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _dump(data: Any) -> str:
    return "#cloud-config\n" + yaml.safe_dump(data, sort_keys=False)


def without_keys(text: str, drop: Iterable[str]) -> str | None:
    """``text`` (a cloud-config) without the dotted keys in ``drop``; None when nothing
    could be removed."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    removed = False
    for dotted in drop:
        parent, _, last = dotted.rpartition(".")
        node = _node_at(data, parent)
        if isinstance(node, dict) and last in node:
            del node[last]
            removed = True
    if not removed:
        return None
    return _dump(data)


def keep_only(text: str, path: str, keep: Iterable[str]) -> str:
    """``text`` (a cloud-config) with the mapping at ``path`` holding only the keys in
    ``keep`` (in the mapping's own order, values unchanged)."""
    data = yaml.safe_load(text)
    node = _node_at(data, path)
    if not isinstance(node, dict):
        raise ValueError(f"no mapping at {path}")
    wanted = set(keep)
    for key in [k for k in node if k not in wanted]:
        del node[key]
    return _dump(data)


NAMES_NO_KEY = "this mapping is not valid under any of the given schemas"  # as findings() words it
MAX_KEYS = 12  # a mapping with more keys is not searched (isolate())


def _problems(validate: Callable[[str], tuple[int, str]], text: str) -> list[tuple[str, str, str]]:
    rc, output = validate(text)
    problems = parse_output(output)
    if rc != 0 and not problems:
        tail = " | ".join(ln for ln in output.strip().splitlines()[-3:])
        raise GmiError(f"cloud-init schema failed without naming a problem (exit {rc}): {tail}")
    return problems


def isolate(text: str, path: str, validate: Callable[[str], tuple[int, str]]) -> list[str] | None:
    """The keys of the mapping at ``path`` that make it invalid, when cloud-init said only
    that the whole mapping is (22.4's ``is not valid under any of the given schemas``);
    None when they cannot be told.

    The mapping is rebuilt one key at a time, in its own order: a key is kept when the
    mapping with the keys kept so far and it has no error at ``path`` (or under it), and
    is at fault otherwise; keys at fault are tried again against the keys kept since
    (a required key such as a user's ``name`` may come after them), until a round keeps
    nothing new. So each key reported is one the entry validates without (all the other
    keys kept) and does not validate with, which holds for several keys at fault at once,
    where taking one key away at a time finds none. Bounded: only mappings of 2 to
    :data:`MAX_KEYS` (12) keys are searched, with at most two validations per key (24);
    beyond that, or when no key ever validates (a required key is itself wrong) or none
    is at fault, the answer is None and the whole mapping stays the finding."""
    try:
        mapping = _node_at(yaml.safe_load(text), path)
    except yaml.YAMLError:
        return None
    if not isinstance(mapping, dict) or not 2 <= len(mapping) <= MAX_KEYS:
        return None
    budget = 2 * len(mapping)
    kept: list[str] = []
    tried: dict[str, frozenset[str]] = {}  # a key at fault -> the keys kept when it was tried
    suspects = list(mapping)
    while suspects:
        grew = False
        for key in list(suspects):
            if tried.get(key) == frozenset(kept):
                continue  # already tried against these very keys
            candidate = [k for k in mapping if k in kept or k == key]
            if len(candidate) == len(mapping):  # the whole mapping: known to be invalid
                tried[key] = frozenset(kept)
                continue
            if budget == 0:
                return None
            budget -= 1
            problems = _problems(validate, keep_only(text, path, candidate))
            if any(kind == "error" and (p == path or p.startswith(path + ".")) for kind, p, _ in problems):
                tried[key] = frozenset(kept)
            else:
                kept.append(key)
                suspects.remove(key)
                grew = True
        if not grew:
            break
    if not kept or not suspects:
        return None
    return [k for k in mapping if k in suspects]


def check(user_data: str, validate: Callable[[str], tuple[int, str]], rounds: int = 5) -> list[Finding]:
    """Every fault the clone's cloud-init finds in ``user_data``. ``validate(text)`` runs
    ``cloud-init schema -c`` on ``text`` in the clone and returns its exit code and output.
    After unknown keys are found, validates again without them; where cloud-init names no
    key of an invalid mapping, finds them with :func:`isolate` (at most 24 validations more
    per such mapping; see the module's doc)."""
    found: list[Finding] = []
    searched: dict[str, bool] = {}  # a mapping's path -> whether isolate() found its keys
    text = user_data
    for _ in range(rounds):
        problems = _problems(validate, text)
        new: list[Finding] = []
        for f in findings(problems, user_data):
            if f.kind == "error" and f.message == NAMES_NO_KEY and searched.get(f.key):
                continue  # its keys at fault are findings already
            if f.kind == "error" and f.message == NAMES_NO_KEY and f.key not in searched:
                keys = isolate(text, f.key, validate)
                searched[f.key] = bool(keys)
                if keys:
                    new += [Finding(f"{f.key}.{k}", line_of(user_data, f"{f.key}.{k}"), "error",
                                    f"not valid here: the entry validates without this key, not with it "
                                    f"(found by validating again; cloud-init said only that {f.key} "
                                    f"is not valid under any of the given schemas)") for k in keys]
                    continue
            new.append(f)
        new = [f for f in dict.fromkeys(new) if f not in found]
        found += new
        unknown = [f.key for f in new if f.message.startswith("unknown key ")]
        if not unknown:
            break
        next_text = without_keys(text, unknown)
        if next_text is None:
            break
        text = next_text
    return found


def describe(found: list[Finding], whose: str) -> str:
    """One line for a report: how many faults, whose, and each with key and line."""
    n = len(found)
    return (f"{n} fault{'s' if n != 1 else ''} in {whose} (the seed's fault, not the image's): "
            + "; ".join(f.describe() for f in found))


def recoverable_split(recoverable: Mapping[str, Iterable[str]]) -> tuple[list[str], list[str]]:
    """cloud-init's recoverable errors (level -> messages) as (complaints about the
    user-data's schema, everything else)."""
    schema: list[str] = []
    other: list[str] = []
    for level, messages in recoverable.items():
        for message in messages:
            (schema if SCHEMA_COMPLAINT.match(str(message)) else other).append(f"{level}: {message}")
    return schema, other
