"""Who built an archive from what: an in-toto Statement v1 whose predicate is SLSA
Provenance v1, in a DSSE envelope (securesystemslib's), signed with ``--sign-key`` when
one is given (the envelope then carries one signature; unsigned, none).

- subject: the archive and the VHDX in it, with their SHA-256;
- builder: the harness, its version and git revision;
- externalParameters: the distro, the backend and every effective setting (secrets
  masked), with where each came from;
- resolvedDependencies (SLSA's materials): the distro YAML, the package repositories'
  ``InRelease``/``repomd.xml`` files the image was updated from (as the image recorded
  them), the install ISO when Step 1 used one, and the seed the clone was checked with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import mask

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "urn:gmi-harness:buildtype:gmi:v1"
SUFFIX = ".intoto.jsonl"  # one DSSE envelope per line, as SLSA's tools expect


@dataclass(frozen=True)
class Material:
    """One input of the build: a name, where it is, and its SHA-256."""

    name: str
    uri: str
    sha256: str

    def descriptor(self) -> dict[str, Any]:
        return {"name": self.name, "uri": self.uri, "digest": {"sha256": self.sha256}}


def file_material(name: str, path: Path) -> Material:
    return Material(name, path.resolve().as_uri(), hashlib.sha256(path.read_bytes()).hexdigest())


def statement(subjects: Sequence[tuple[str, str]], *, builder_id: str, revision: str,
              distro: str, backend: str, settings: Mapping[str, Any],
              internal: Mapping[str, Any], materials: Sequence[Material], invocation: str,
              started: str, finished: str, byproducts: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """The in-toto Statement (a plain dict, as it is serialised)."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": n, "digest": {"sha256": d}} for n, d in subjects],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"distro": distro, "backend": backend,
                                       "settings": {k: mask(str(v)) for k, v in settings.items()}},
                "internalParameters": {k: mask(str(v)) for k, v in internal.items()},
                "resolvedDependencies": [m.descriptor() for m in materials],
            },
            "runDetails": {
                "builder": {"id": builder_id,
                            "version": {"gmi-harness": __version__, "git": revision}},
                "metadata": {"invocationId": invocation, "startedOn": started,
                             "finishedOn": finished},
                "byproducts": [{"name": n, "digest": {"sha256": d}} for n, d in byproducts],
            },
        },
    }


def envelope(stmt: Mapping[str, Any], sign: Any = None) -> dict[str, Any]:
    """The DSSE envelope of ``stmt``; ``sign(pae) -> (keyid, signature bytes)`` adds its
    one signature (over DSSE's pre-authentication encoding, as the spec asks)."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import Signature

    env = Envelope(json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode(),
                   PAYLOAD_TYPE, {})
    if sign is not None:
        keyid, blob = sign(env.pae())
        env.signatures[keyid] = Signature(keyid, blob.hex())
    return env.to_dict()


def write(env: Mapping[str, Any], path: Path) -> Path:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(env, separators=(",", ":")) + "\n")
    tmp.replace(path)
    return path


def read(path: Path) -> tuple[dict[str, Any], Any]:
    """(the statement, securesystemslib's Envelope) of a provenance file."""
    from securesystemslib.dsse import Envelope

    env = Envelope.from_dict(json.loads(path.read_text().splitlines()[0]))
    return json.loads(env.payload), env


# The package repositories' signed metadata the image was updated from, read in the image
# by the clean-up stage before it removes apt's lists (or dnf's and zypper's caches).
REPOSITORY_METADATA_SCRIPT = r"""shopt -s nullglob
for f in /var/lib/apt/lists/*_InRelease /var/cache/dnf/*/repodata/repomd.xml \
         /var/cache/libdnf5/*/repodata/repomd.xml /var/cache/zypp/raw/*/repodata/repomd.xml; do
  sha256sum "$f"
done
cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
  | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print "source", $i; break } }'
true"""


def repository_metadata(output: str) -> list[dict[str, str]]:
    """:data:`REPOSITORY_METADATA_SCRIPT`'s output as materials: each file's SHA-256 with
    the URL it was fetched from (apt names its lists after the URL: ``_`` for ``/``,
    ``%5f`` for ``_``, the scheme left out, which the sources list gives back)."""
    from urllib.parse import unquote

    sources = [line.split()[1] for line in output.splitlines() if line.startswith("source ")]
    found = []
    for line in output.splitlines():
        digest, _, path = line.partition("  ")
        if line.startswith("source ") or len(digest) != 64 or not path:
            continue
        name = path.rsplit("/", 1)[-1]
        uri = Path(path).as_uri()
        if path.startswith("/var/lib/apt/lists/"):
            bare = unquote(name.replace("_", "/"))
            scheme = next((s.split("://", 1)[0] for s in sources
                           if bare.startswith(s.split("://", 1)[-1].rstrip("/") + "/")), "http")
            uri = f"{scheme}://{bare}"
        found.append({"name": name, "uri": uri, "sha256": digest})
    return found
