"""Every cmdlet call in the Hyper-V scripts matches Microsoft's reference: the cmdlet
exists and the named parameters it passes belong together to one of its parameter
sets, on every Windows Server version the backend supports (2016, 2019, 2022, 2025:
docs/hyperv.md, "Host prerequisites") for the Hyper-V and networking modules, and in
Windows PowerShell 5.1 (the engine of every remote session) for the engine's own
cmdlets.

The reference is tests/data/powershell-reference.json, the SYNTAX sections of
Microsoft's reference pages (MicrosoftDocs/windows-powershell-docs per Windows Server
version, MicrosoftDocs/PowerShell-Docs for 5.1; regenerate it with
tests/data/make_powershell_reference.py when a script calls a new cmdlet). The calls
are read with the real PowerShell grammar (tests/powershell_calls.py).

What this proves: no misspelt cmdlet or parameter, no parameter a supported host's
module lacks (per its page), no two parameters from different sets in one call (e.g.
``Compare-VM -Register`` with ``-Copy``). What it does not: positional arguments and
pipeline input are not matched to sets, parameter values and types are not checked,
and a page that is wrong about a version is only as right as :data:`CORRECTIONS`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from powershell_calls import Call, calls, script_calls

REFERENCE = json.loads((Path(__file__).parent / "data" / "powershell-reference.json").read_text())
CMDLETS = {name.lower(): (name, pages) for name, pages in REFERENCE["cmdlets"].items()}
# Every Windows Server version the backend supports as a build host
SUPPORTED_HOSTS = ("winserver2016-ps", "winserver2019-ps", "winserver2022-ps", "winserver2025-ps")
COMMON = {p.lower() for p in (
    "Debug", "ErrorAction", "ErrorVariable", "InformationAction", "InformationVariable",
    "OutVariable", "OutBuffer", "PipelineVariable", "Verbose", "WarningAction", "WarningVariable")}
# Where a reference page is wrong about a version, with the evidence. The scripts must
# ask the host before passing such a parameter: (Get-Command X).Parameters.ContainsKey('P').
CORRECTIONS = {
    ("set-vm", "automaticcheckpointsenabled"): (
        "winserver2016-ps",
        "automatic checkpoints came with Windows 10 1709 / Server 1709; Server 2016 (1607) "
        "fails with 'A parameter cannot be found that matches parameter name "
        "AutomaticCheckpointsEnabled' (hashicorp/vagrant#10251, #10305), although its page "
        "lists it"),
}


def docsets(pages: dict[str, object]) -> list[str]:
    """The pages a call must match: every supported Windows Server version for a
    Windows Server module, else Windows PowerShell 5.1's."""
    server = [d for d in SUPPORTED_HOSTS if d in pages]
    return server or (["powershell-5.1"] if "powershell-5.1" in pages else [])


def guarded(script_text: str, cmdlet: str, parameter: str) -> bool:
    pattern = (rf"\(Get-Command\s+{re.escape(cmdlet)}\)\.Parameters\.ContainsKey\(\s*"
               rf"'{re.escape(parameter)}'\s*\)")
    return re.search(pattern, script_text, re.I) is not None


def problems(call: Call, script_text: str) -> list[str]:
    """What is wrong with one call, against the reference (empty: it matches)."""
    known = CMDLETS.get(call.cmdlet.lower())
    where = f"{call.script}:{call.line}: {call.text}"
    if known is None:
        return [f"{where}: {call.cmdlet} is not in the reference (a typo, or run "
                "tests/data/make_powershell_reference.py for a new cmdlet)"]
    name, pages = known
    if not docsets(pages):
        return [f"{where}: {name} has no reference page (a typo, or a cmdlet of a module "
                "the reference does not cover)"]
    found = []
    for docset in docsets(pages):
        page = pages[docset]
        aliases = {a.lower(): p.lower() for a, p in page["aliases"].items()}
        named = {aliases.get(p.lower(), p.lower()) for p in call.parameters} - COMMON
        absent_here = {p for p in named if CORRECTIONS.get((name.lower(), p), ("",))[0] == docset}
        if absent_here and not all(guarded(script_text, name, p) for p in absent_here):
            found.append(f"{where}: -{', -'.join(sorted(absent_here))} does not exist on "
                         f"{docset} ({CORRECTIONS[(name.lower(), min(absent_here))][1]}); ask "
                         f"(Get-Command {name}).Parameters.ContainsKey(...) first")
        named -= {p for p in absent_here if guarded(script_text, name, p)}
        sets = {s: {p.lower() for p in params} for s, params in page["sets"].items()}
        if not any(named <= params for params in sets.values()):
            unknown = named - set().union(*sets.values())
            why = (f"no parameter -{', -'.join(sorted(unknown))}" if unknown
                   else f"-{', -'.join(sorted(named))} are in no one parameter set together")
            found.append(f"{where}: {docset} {name}: {why}")
    return found


def test_the_reference_covers_the_supported_hosts_and_names_its_sources():
    assert set(REFERENCE["sources"]) == {"MicrosoftDocs/windows-powershell-docs",
                                         "MicrosoftDocs/PowerShell-Docs"}
    for cmdlet in ("New-VM", "Compare-VM", "Get-VMHostSupportedVersion", "Rename-VM", "Get-VM"):
        assert set(SUPPORTED_HOSTS) <= set(REFERENCE["cmdlets"][cmdlet]), cmdlet
    assert "Version" in REFERENCE["cmdlets"]["New-VM"]["winserver2016-ps"]["sets"]["No VHD (Default)"] \
        or any("Version" in s for s in REFERENCE["cmdlets"]["New-VM"]["winserver2016-ps"]["sets"].values())


@pytest.mark.parametrize("script", sorted({c.script for c in script_calls()}))
def test_every_cmdlet_call_matches_microsofts_reference(script):
    text = (Path(__file__).resolve().parent.parent / "harness" / "backends" / "hyperv" / "scripts"
            / script).read_text(encoding="utf-8")
    found = [p for c in calls(text, script) for p in problems(c, text)]
    assert not found, "\n".join(found)


def test_the_new_calls_are_there_and_checked():
    """The calls this backend depends on for a real host (issue #22) are in the scripts,
    so the test above has checked them against their pages."""
    every = {(c.cmdlet.lower(), p.lower()) for c in script_calls() for p in c.parameters}
    for cmdlet, parameter in (("compare-vm", "generatenewid"), ("compare-vm", "copy"),
                              ("compare-vm", "vhddestinationpath"), ("new-vm", "version"),
                              ("rename-vm", "newname"), ("get-vm", "id")):
        assert (cmdlet, parameter) in every, (cmdlet, parameter)
    assert any(c.cmdlet.lower() == "get-vmhostsupportedversion" for c in script_calls())


@pytest.mark.parametrize(("text", "message"), [
    ("Get-VM -Identifier $Id", "no parameter -identifier"),
    ("New-VM -Name x -Generation 2 -NoVHD -VHDPath y", "are in no one parameter set together"),
    ("Compare-VM -Path $p -Register -Copy", "are in no one parameter set together"),
    ("Get-VMHostSupportedVersion -Newest", "no parameter -newest"),
    ("Get-Itm -LiteralPath x", "Get-Itm is not in the reference"),
    ("Remove-Item -LiteralPath x -Recures", "no parameter -recures"),
    ("$vm | Set-VM -AutomaticCheckpointsEnabled $false",
     "-automaticcheckpointsenabled does not exist on winserver2016-ps"),
])
def test_a_wrong_call_is_caught_with_file_line_and_why(text, message):
    found = [p for c in calls(text, "probe.ps1") for p in problems(c, text)]
    assert found and message in found[0], found
    assert found[0].startswith("probe.ps1:1: ")


def test_a_guarded_parameter_is_accepted_and_aliases_resolve():
    text = ("if ((Get-Command Set-VM).Parameters.ContainsKey('AutomaticCheckpointsEnabled')) {\n"
            "    $vm | Set-VM -AutomaticCheckpointsEnabled $false\n}\n"
            "Set-VM -VMName 'x' -Notes '' -ErrorAction Stop\n"
            "Remove-VMSnapshot -VMName x -Confirm:$false\n")
    assert [p for c in calls(text, "probe.ps1") for p in problems(c, text)] == []


def test_the_preflight_asks_the_host_for_every_parameter_the_scripts_pass():
    """``SCRIPT_PARAMETERS`` (what host_info.ps1 asks the host's Hyper-V module for) is
    what the scripts call, except a parameter a script asks the host for itself."""
    from harness.backends.hyperv.backend import SCRIPT_PARAMETERS

    scripts = Path(__file__).resolve().parent.parent / "harness" / "backends" / "hyperv" / "scripts"
    wanted: dict[str, set[str]] = {}
    for c in script_calls():
        pages = CMDLETS.get(c.cmdlet.lower(), ("", {}))[1]
        if not any(p.get("module") == "Hyper-V" for d, p in pages.items() if d in SUPPORTED_HOSTS):
            continue
        text = (scripts / c.script).read_text(encoding="utf-8")
        wanted.setdefault(c.cmdlet, set()).update(
            p for p in c.parameters if p.lower() not in COMMON and not guarded(text, c.cmdlet, p))
    assert {k: set(v) for k, v in SCRIPT_PARAMETERS.items()} == wanted
