"""Write tests/data/powershell-reference.json: the parameter sets of every cmdlet the
Hyper-V scripts call, as Microsoft's reference documents them (read by
tests/test_hyperv_cmdlets.py).

Sources (Microsoft's own reference pages, in their public repositories):
- MicrosoftDocs/windows-powershell-docs, ``docset/winserver{2016,2019,2022,2025}-ps``: the
  Hyper-V module and the other Windows Server modules (NetTCPIP's Get-NetNeighbor), per
  Windows Server version;
- MicrosoftDocs/PowerShell-Docs, ``reference/5.1``: the cmdlets of Windows PowerShell 5.1
  itself (Microsoft.PowerShell.*, CimCmdlets), the engine the scripts run in.

From each page, only facts: the parameter sets of its SYNTAX section (the parameter
names in each code block) and the aliases of its PARAMETERS section.

Run (with the two repositories as git directories or checkouts)::

    python tests/data/make_powershell_reference.py WINDOWS_POWERSHELL_DOCS POWERSHELL_DOCS
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from powershell_calls import script_calls  # noqa: E402

WINDOWS_SERVER = ("winserver2016-ps", "winserver2019-ps", "winserver2022-ps", "winserver2025-ps")
OUT = HERE / "powershell-reference.json"


class Repo:
    def __init__(self, path: str) -> None:
        self.path = path
        self.commit = self.git("rev-parse", "HEAD").strip()
        self.files = self.git("ls-tree", "-r", "--name-only", "HEAD").splitlines()

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", self.path, *args], check=True, capture_output=True,
                              text=True).stdout

    def show(self, path: str) -> str:
        return self.git("show", f"HEAD:{path}")

    def find(self, prefix: str, cmdlet: str) -> str | None:
        want = f"/{cmdlet}.md".lower()
        hits = [f for f in self.files if f.lower().startswith(prefix.lower()) and f.lower().endswith(want)]
        return hits[0] if hits else None


def parse_page(text: str) -> dict[str, object]:
    """{"sets": {name: [parameter, ...]}, "aliases": {alias: parameter}} of one page."""
    syntax = text.split("## SYNTAX", 1)[1].split("\n## ", 1)[0]
    sets: dict[str, list[str]] = {}
    for m in re.finditer(r"^### (.+?)\n+```[^\n]*\n(.*?)```", syntax, re.S | re.M):
        params = re.findall(r"(?<![\w-])-(\w+)", m.group(2))
        sets[m.group(1).strip()] = sorted(set(params), key=str.lower)
    if not sets:  # a page with one unnamed syntax block
        block = re.search(r"```[^\n]*\n(.*?)```", syntax, re.S)
        if block:
            sets["(only)"] = sorted(set(re.findall(r"(?<![\w-])-(\w+)", block.group(1))), key=str.lower)
    aliases: dict[str, str] = {}
    params_part = text.split("## PARAMETERS", 1)[1] if "## PARAMETERS" in text else ""
    for m in re.finditer(r"^### -(\w+)\s*\n(.*?)(?=^### |\Z)", params_part, re.S | re.M):
        param, body = m.group(1), m.group(2)
        found = re.search(r"^Aliases:[ \t]*(.*)$", body, re.M)
        for alias in (found.group(1).split(",") if found else []):
            if alias.strip():
                aliases[alias.strip()] = param
        # A parameter the PARAMETERS section puts in "(All)" sets (or names sets for) is
        # in them even where a SYNTAX block leaves it out (the FileSystem provider's
        # -File and -Directory in Get-ChildItem's LiteralItems, for one).
        in_sets = re.search(r"^Parameter Sets:[ \t]*(.*)$", body, re.M)
        named = [s.strip() for s in in_sets.group(1).split(",")] if in_sets else []
        for set_name, members in sets.items():
            short = set_name.split(" (")[0].split(" - ")[0]
            if (named == ["(All)"] or short in named) and param not in members:
                members.append(param)
                members.sort(key=str.lower)
    return {"sets": sets, "aliases": aliases}


def main(windows_docs: str, ps_docs: str, extra: list[str]) -> None:
    win, core = Repo(windows_docs), Repo(ps_docs)
    wanted = sorted({c.cmdlet for c in script_calls()} | set(extra), key=str.lower)
    cmdlets: dict[str, object] = {}
    missing = []
    for cmdlet in wanted:
        pages = {}
        for docset in WINDOWS_SERVER:
            path = win.find(f"docset/{docset}/", cmdlet)
            if path:
                pages[docset] = {"module": path.split("/")[2], **parse_page(win.show(path))}
        path = core.find("reference/5.1/", cmdlet)
        if path:
            pages["powershell-5.1"] = {"module": path.split("/")[2], **parse_page(core.show(path))}
        if not pages:
            missing.append(cmdlet)
        cmdlets[cmdlet] = pages
    data = {
        "about": "Parameter sets of the cmdlets the Hyper-V scripts call, from Microsoft's "
                 "reference pages; written by tests/data/make_powershell_reference.py",
        "sources": {"MicrosoftDocs/windows-powershell-docs": win.commit,
                    "MicrosoftDocs/PowerShell-Docs": core.commit},
        "cmdlets": cmdlets,
    }
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}: {len(cmdlets)} cmdlets" + (f"; NOT FOUND: {missing}" if missing else ""))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
