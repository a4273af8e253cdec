"""Every command a PowerShell script calls, with the named parameters it passes: read
with the real PowerShell grammar (tree-sitter-powershell, as tests/test_powershell_syntax.py)
so that strings, comments and here-strings are never taken for calls.

A splatted hashtable (``New-VHD @vhdArgs``) counts with its keys: those of the
``$vhdArgs = @{ ... }`` literal (top level only) and of every ``$vhdArgs.Key = ...``
assignment in the same script. A parameter written ``-Confirm:$false`` counts as
``Confirm``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import tree_sitter
import tree_sitter_powershell

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
SCRIPTS = Path(__file__).resolve().parent.parent / "harness" / "backends" / "hyperv" / "scripts"


@dataclass(frozen=True)
class Call:
    script: str  # the script's file name
    line: int  # 1-based
    cmdlet: str  # as written (PowerShell names are case-insensitive)
    parameters: tuple[str, ...]  # named parameters, as written, without the dash
    text: str  # the call as written (first line)


def _splat_keys(text: str, name: str) -> list[str]:
    keys: list[str] = []
    m = re.search(r"\$" + re.escape(name) + r"\s*=\s*@\{", text)
    if m:
        depth, start, i = 1, m.end(), m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        body = text[start:i - 1]
        level, top = 0, []
        for ch in body:  # the literal's own keys, not those of a nested hashtable
            level += {"{": 1, "}": -1}.get(ch, 0)
            top.append(ch if level == 0 else " ")
        keys += re.findall(r"(?:^|[;\n{]|\s)(\w+)\s*=", "".join(top))
    keys += re.findall(r"\$" + re.escape(name) + r"\.(\w+)\s*=", text)
    return list(dict.fromkeys(keys))


def calls(text: str, script: str = "") -> list[Call]:
    """The commands ``text`` calls by name (not ``& $block``, not the script's own
    functions), in source order."""
    source = text.encode("utf-8")
    found: list[Call] = []
    own = {m.lower() for m in re.findall(r"(?im)^\s*function\s+([\w-]+)", text)}

    def walk(node: tree_sitter.Node) -> None:
        if node.type == "command":
            name = next((c for c in node.children if c.type == "command_name"), None)
            if name is not None and source[name.start_byte:name.end_byte].decode().lower() not in own:
                params: list[str] = []
                elements = next((c for c in node.children if c.type == "command_elements"), None)
                for el in elements.children if elements is not None else []:
                    word = source[el.start_byte:el.end_byte].decode()
                    if el.type == "command_parameter":
                        params.append(word.lstrip("-").split(":")[0])
                    elif word.startswith("@") and re.fullmatch(r"@\w+", word.strip()):
                        params += _splat_keys(text, word.strip()[1:])
                call = source[node.start_byte:node.end_byte].decode().splitlines()[0]
                found.append(Call(script, node.start_point[0] + 1,
                                  source[name.start_byte:name.end_byte].decode(), tuple(params),
                                  call.strip()))
        for child in node.children:
            walk(child)

    walk(PARSER.parse(source).root_node)
    return found


def script_calls(folder: Path = SCRIPTS) -> list[Call]:
    """Every call of every ``*.ps1`` in ``folder``."""
    return [c for path in sorted(folder.glob("*.ps1"))
            for c in calls(path.read_text(encoding="utf-8"), path.name)]
