"""Package versions in the order their package managers give them: dpkg's (python-debian's
implementation of Debian policy 5.6.12) and rpm's ``rpmvercmp`` with epoch and release."""

from __future__ import annotations

from harness.distro.pkgmgr import is_deb


def dpkg_compare(a: str, b: str) -> int:
    """-1, 0 or 1 as ``dpkg --compare-versions`` orders ``a`` and ``b``."""
    from debian.debian_support import version_compare

    result = version_compare(a, b)
    return (result > 0) - (result < 0)


def rpmvercmp(a: str, b: str) -> int:
    """rpm's comparison of one version (or release) string: alternating digit and letter
    segments, other characters only separate, ``~`` sorts before anything (even the end)
    and ``^`` after the end but before anything else.
    Long on purpose: rpm's own loop (rpmio/rpmvercmp.c), step for step, to read beside it."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and not a[i].isalnum() and a[i] not in "~^":
            i += 1
        while j < len(b) and not b[j].isalnum() and b[j] not in "~^":
            j += 1
        ta, tb = a[i] if i < len(a) else "", b[j] if j < len(b) else ""
        if "~" in (ta, tb):
            if ta != "~":
                return 1
            if tb != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if "^" in (ta, tb):
            if not ta:
                return -1
            if not tb:
                return 1
            if ta != "^":
                return 1
            if tb != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not (ta and tb):
            break
        digits = ta.isdigit()
        kind = str.isdigit if digits else str.isalpha
        si, sj = i, j
        while i < len(a) and kind(a[i]):
            i += 1
        while j < len(b) and kind(b[j]):
            j += 1
        one, two = a[si:i], b[sj:j]
        if not two:  # segments of different kinds: the number is newer
            return 1 if digits else -1
        if digits:
            one, two = one.lstrip("0"), two.lstrip("0")
            if len(one) != len(two):
                return 1 if len(one) > len(two) else -1
        if one != two:
            return 1 if one > two else -1
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


def rpm_compare(a: str, b: str) -> int:
    """-1, 0 or 1 for two ``[epoch:]version[-release]`` strings, as rpm orders them."""
    def split(v: str) -> tuple[int, str, str]:
        epoch, sep, rest = v.partition(":")
        if not sep or not epoch.isdigit():
            epoch, rest = "0", v
        version, _, release = rest.rpartition("-") if "-" in rest else (rest, "", "")
        return int(epoch), version, release

    ea, va, ra = split(a)
    eb, vb, rb = split(b)
    if ea != eb:
        return 1 if ea > eb else -1
    return rpmvercmp(va, vb) or (rpmvercmp(ra, rb) if ra and rb else 0)


def compare(family: str, a: str, b: str) -> int:
    """``a`` against ``b`` in the order of the family's package manager."""
    return dpkg_compare(a, b) if is_deb(family) else rpm_compare(a, b)
