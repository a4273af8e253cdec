"""Licenses as SPDX license expressions: from Debian's machine-readable copyright files
(copyright-format 1.0, "DEP-5") and from rpm's ``License`` tag.

A short name SPDX knows becomes its SPDX identifier (``GPL-2+`` -> ``GPL-2.0-or-later``,
``Expat`` -> ``MIT``); any other becomes ``LicenseRef-<name>``, which the SBOMs define
as an extracted licence naming where it came from. A package without a machine-readable
copyright file (or an rpm tag that is no licence expression) gets ``NOASSERTION``.
"""

from __future__ import annotations

import functools
import io
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

NOASSERTION = "NOASSERTION"

# Debian short names whose SPDX identifier is spelled otherwise (copyright-format 1.0,
# "License specification", and the names Debian packages commonly use).
DEBIAN_NAMES = {
    "expat": "MIT",
    "artistic": "Artistic-1.0",
    "artistic-1": "Artistic-1.0",
    "artistic-2": "Artistic-2.0",
    "perl": "Artistic-1.0-Perl OR GPL-1.0-or-later",
    "psf-2": "PSF-2.0",
    "python": "PSF-2.0",
    "zope": "ZPL-2.1",
    "mpl-2": "MPL-2.0",
    "apache-2": "Apache-2.0",
    "cc0": "CC0-1.0",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd-4-clause": "BSD-4-Clause",
}
_FSF = re.compile(r"(?P<family>A?GPL|LGPL|GFDL)-(?P<version>\d+(?:\.\d+)?)(?P<plus>\+)?", re.I)


@functools.cache
def _known() -> dict[str, str]:
    """SPDX's licence identifiers, by their lower-case spelling."""
    from license_expression import get_spdx_licensing

    return {k.lower(): k for k in get_spdx_licensing().known_symbols}


def _ref(name: str) -> str:
    return "LicenseRef-" + (re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-") or "unnamed")


def spdx_id(short: str) -> str:
    """One licence short name as an SPDX identifier (or expression), else a LicenseRef."""
    name = short.strip()
    key = name.lower()
    if key in DEBIAN_NAMES:
        return DEBIAN_NAMES[key]
    m = _FSF.fullmatch(name)
    if m:
        version = m["version"] if "." in m["version"] else m["version"] + ".0"
        candidate = f"{m['family'].upper()}-{version}-{'or-later' if m['plus'] else 'only'}"
        if candidate.lower() in _known():
            return _known()[candidate.lower()]
    if key in _known():
        return _known()[key]
    if key.endswith("+") and key[:-1] in _known():
        return _known()[key[:-1]] + "+"
    return _ref(name)


def synopsis_expression(synopsis: str) -> str:
    """A DEP-5 ``License:`` synopsis as an SPDX expression: ``,`` and ``and`` join with
    AND, ``or`` with OR (it binds tighter, as the format says); a licence ``with`` an
    exception stays one LicenseRef (SPDX's exception list rarely matches Debian's names)."""
    ands = []
    for part in re.split(r",|\s+and\s+", synopsis.strip(), flags=re.I):
        alternatives = [a.strip() for a in re.split(r"\s+or\s+", part, flags=re.I) if a.strip()]
        ids = []
        for alt in alternatives:
            ident = _ref(alt) if re.search(r"\swith\s", alt, re.I) else spdx_id(alt)
            ids.append(f"({ident})" if " " in ident else ident)
        if ids:
            ands.append(" OR ".join(ids))
    if not ands:
        return NOASSERTION
    if len(ands) == 1:
        return ands[0]
    return " AND ".join(f"({a})" if " OR " in a else a for a in ands)


@dataclass(frozen=True)
class Licence:
    """A package's licence: an SPDX expression (or NOASSERTION), the LicenseRefs in it
    with the names they stand for, and where it was read."""

    expression: str = NOASSERTION
    refs: dict[str, str] = field(default_factory=dict)
    source: str = ""


def combine(synopses: Iterable[str], source: str) -> Licence:
    """Every distinct synopsis of a package's files, joined with AND."""
    exprs = list(dict.fromkeys(synopsis_expression(s) for s in synopses if s and s.strip()))
    exprs = [e for e in exprs if e != NOASSERTION]
    if not exprs:
        return Licence(source=source)
    text = exprs[0] if len(exprs) == 1 else " AND ".join(
        f"({e})" if " " in e else e for e in exprs)
    text = _simplified(text)
    refs = {}
    for s in synopses:
        for part in re.split(r",|\s+and\s+|\s+or\s+", s or "", flags=re.I):
            part = part.strip()
            if part and (ident := (_ref(part) if re.search(r"\swith\s", part, re.I)
                                   else spdx_id(part))).startswith("LicenseRef-"):
                refs[ident] = part
    return Licence(text, refs, source)


def _simplified(text: str) -> str:
    """The same expression with repeated terms once (``A AND (A AND B)`` -> ``A AND B``)."""
    from license_expression import ExpressionError, get_spdx_licensing

    try:
        return str(get_spdx_licensing().parse(text).simplify())
    except ExpressionError:
        return text


def from_debian_copyright(text: str, source: str) -> Licence:
    """The licence of a package from its ``/usr/share/doc/<pkg>/copyright``: the
    synopses of its Files paragraphs when it is machine-readable (python-debian's
    reading of copyright-format 1.0 and its drafts), else NOASSERTION."""
    from debian.copyright import Copyright, Error, NotMachineReadableError

    quiet = logging.getLogger("debian.copyright")
    level, quiet.level = quiet.level, logging.ERROR  # ("Fixing Format URL" per old draft URL)
    try:
        parsed = Copyright(io.StringIO(text), strict=False)
        synopses = [str(p.license.synopsis) for p in parsed.all_files_paragraphs()  # type: ignore[attr-defined]
                    if p.license is not None]
    except NotMachineReadableError:
        return Licence(source=f"{source} (not machine-readable)")
    except (Error, ValueError, AttributeError, TypeError) as exc:
        return Licence(source=f"{source} (unreadable: {type(exc).__name__})")
    finally:
        quiet.level = level
    return combine(synopses, source)


def from_rpm_tag(tag: str, source: str) -> Licence:
    """rpm's ``License`` tag, when it is an SPDX expression (Fedora's since 2023); an
    older tag (``GPLv2+``) is no expression: NOASSERTION, the tag kept as the source."""
    from license_expression import ExpressionError, get_spdx_licensing

    tag = tag.strip()
    if not tag or tag == "(none)":
        return Licence(source=source)
    licensing = get_spdx_licensing()
    try:
        info = licensing.validate(tag, strict=True)
    except (ExpressionError, AttributeError):  # (license-expression 30.4 on some bad input)
        return Licence(source=f"{source}: {tag!r} is not an SPDX expression")
    if info.errors:
        return Licence(source=f"{source}: {tag!r} is not an SPDX expression")
    return Licence(str(info.normalized_expression or tag), {}, source)
