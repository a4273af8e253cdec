"""The image's software bill of materials, in both formats scanners read: SPDX 2.3 JSON
(written with spdx-tools, the SPDX project's own library, which validates the document
as it writes it) and CycloneDX 1.5 JSON (cyclonedx-python-lib, checked against the
CycloneDX 1.5 JSON schema it ships).

The top element is the image itself (the VHDX, with its SHA-256); it contains every
installed package (name, version, architecture, source package, purl, licence from the
package's machine-readable copyright file or NOASSERTION) and the kernel it boots.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import GmiError
from harness.evidence.inventory import Inventory, Package
from harness.evidence.licenses import NOASSERTION

SPDX_SUFFIX = ".spdx.json"
CYCLONEDX_SUFFIX = ".cdx.json"
TOOL = f"gmi-harness-{__version__}"
PROPERTY = "gmi-harness"  # CycloneDX property names: gmi-harness:<what>


class SbomError(GmiError):
    """An SBOM cannot be written, or its format's validator refuses it."""


@dataclass(frozen=True)
class Image:
    """The image the SBOM describes."""

    name: str  # vmgenie's VM name: GMI Debian 12
    os_name: str  # PRETTY_NAME
    os_version: str
    file_name: str  # the VHDX's entry in the archive
    sha256: str  # the VHDX's
    built: datetime


def purl(inv: Inventory, p: Package) -> str:
    """The package's purl: ``pkg:deb/debian/bash@5.2.15-2+b7?arch=amd64&distro=debian-12``
    (``upstream=`` names the source package when it differs), or
    ``pkg:rpm/fedora/bash@5.2.26-3.fc42?arch=x86_64&distro=fedora-42[&epoch=N]``."""
    from packageurl import PackageURL

    qualifiers = {"arch": p.arch, "distro": inv.distro_qualifier}
    if p.epoch:
        qualifiers["epoch"] = p.epoch
    if p.source and (p.source, p.source_version) != (p.name, p.version):
        qualifiers["upstream"] = (f"{p.source}@{p.source_version}" if p.source_version
                                  else p.source)
    return PackageURL(type=inv.purl_type, namespace=inv.os_id, name=p.name, version=p.version,
                      qualifiers=qualifiers).to_string()


def _spdx_id(*parts: str) -> str:
    return "SPDXRef-" + "-".join(re.sub(r"[^A-Za-z0-9.]+", "-", p).strip("-") for p in parts)


def _namespace(image: Image) -> str:
    # unique per image, and the same for the same image (a reproducible build)
    return f"https://gmi-harness.invalid/spdx/{re.sub(r'[^A-Za-z0-9.-]+', '-', image.name)}-{image.sha256}"


def spdx_document(inv: Inventory, image: Image) -> Any:
    """The SPDX 2.3 document (spdx-tools' model).
    Long on purpose: the whole document in one place, in the order its reader meets it."""
    from license_expression import get_spdx_licensing
    from spdx_tools.spdx.model import (
        Actor,
        ActorType,
        Checksum,
        ChecksumAlgorithm,
        CreationInfo,
        Document,
        ExternalPackageRef,
        ExternalPackageRefCategory,
        ExtractedLicensingInfo,
        PackagePurpose,
        Relationship,
        RelationshipType,
        SpdxNoAssertion,
    )
    from spdx_tools.spdx.model import Package as SpdxPackage

    licensing = get_spdx_licensing()

    def licence(expr: str) -> Any:
        return SpdxNoAssertion() if expr == NOASSERTION else licensing.parse(expr)

    image_id = _spdx_id("Image")
    doc = Document(CreationInfo(
        spdx_version="SPDX-2.3", spdx_id="SPDXRef-DOCUMENT", name=f"{image.name} SBOM",
        document_namespace=_namespace(image), creators=[Actor(ActorType.TOOL, TOOL)],
        created=image.built.replace(tzinfo=None, microsecond=0),
        creator_comment="Read from the image's own package database at the seal (dpkg's "
                        "status and copyright files, or rpm -qa), never from the build host."))
    doc.packages.append(SpdxPackage(
        spdx_id=image_id, name=image.name, version=image.os_version, file_name=image.file_name,
        download_location=SpdxNoAssertion(), files_analyzed=False,
        checksums=[Checksum(ChecksumAlgorithm.SHA256, image.sha256)],
        license_concluded=SpdxNoAssertion(), license_declared=SpdxNoAssertion(),
        copyright_text=SpdxNoAssertion(), primary_package_purpose=PackagePurpose.OPERATING_SYSTEM,
        description=f"{image.os_name}: a GMI (Hyper-V Generation 2 disk image, VHDX)",
        built_date=image.built.replace(tzinfo=None, microsecond=0)))
    doc.relationships.append(Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, image_id))
    refs: dict[str, str] = {}
    ids: dict[str, str] = {}
    for p in inv.packages:
        pid = _spdx_id("Package", inv.purl_type, p.name, p.arch)
        ids[p.key] = pid
        refs.update(p.licence.refs)
        doc.packages.append(SpdxPackage(
            spdx_id=pid, name=p.name, version=p.version, download_location=SpdxNoAssertion(),
            supplier=SpdxNoAssertion(), files_analyzed=False,
            source_info=f"built from the {inv.purl_type} source package {p.source} "
                        f"{p.source_version}".rstrip(),
            license_concluded=SpdxNoAssertion(), license_declared=licence(p.licence.expression),
            license_comment=f"from {p.licence.source}" if p.licence.source else None,
            copyright_text=SpdxNoAssertion(),
            external_references=[ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER,
                                                    "purl", purl(inv, p))],
            primary_package_purpose=PackagePurpose.INSTALL))
        doc.relationships.append(Relationship(image_id, RelationshipType.CONTAINS, pid))
    if inv.kernel:
        kid = _spdx_id("Kernel")
        doc.packages.append(SpdxPackage(
            spdx_id=kid, name="Linux kernel", version=inv.kernel, download_location=SpdxNoAssertion(),
            files_analyzed=False, license_concluded=SpdxNoAssertion(),
            license_declared=SpdxNoAssertion(), copyright_text=SpdxNoAssertion(),
            primary_package_purpose=PackagePurpose.OPERATING_SYSTEM,
            description="the kernel the image boots"))
        doc.relationships.append(Relationship(image_id, RelationshipType.CONTAINS, kid))
        shipped = inv.kernel_package()
        if shipped is not None:
            doc.relationships.append(Relationship(ids[shipped.key], RelationshipType.CONTAINS, kid))
    for ref, name in sorted(refs.items()):
        doc.extracted_licensing_info.append(ExtractedLicensingInfo(
            license_id=ref, license_name=name,
            extracted_text=f"The licence Debian's copyright format calls {name!r}; its text is in "
                           "the package's copyright file in the image."))
    return doc


def write_spdx(inv: Inventory, image: Image, path: Path) -> Path:
    """Write the SPDX 2.3 JSON; spdx-tools refuses to write a document it finds invalid."""
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
    from spdx_tools.spdx.writer.json.json_writer import write_document_to_file

    doc = spdx_document(inv, image)
    problems = validate_full_spdx_document(doc, "SPDX-2.3")
    if problems:
        raise SbomError(f"the SPDX document is not valid SPDX 2.3: {problems[0].validation_message} "
                        f"({len(problems)} problem(s))")
    tmp = path.with_name(path.name + ".part")
    write_document_to_file(doc, str(tmp), validate=False)
    tmp.replace(path)
    return path


def cyclonedx_bom(inv: Inventory, image: Image) -> Any:
    """The CycloneDX BOM (cyclonedx-python-lib's model).
    Long on purpose: the whole BOM in one place, as spdx_document."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.contact import OrganizationalEntity
    from cyclonedx.model.license import LicenseExpression
    from cyclonedx.model.tool import ToolRepository
    from packageurl import PackageURL

    top = Component(
        name=image.name, version=image.os_version, type=ComponentType.OPERATING_SYSTEM,
        bom_ref="image", description=f"{image.os_name}: a GMI (Hyper-V Generation 2 disk image, VHDX)",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=image.sha256)],
        properties=[Property(name=f"{PROPERTY}:file", value=image.file_name)])
    tools = ToolRepository(components=[Component(name="gmi-harness", version=__version__,
                                                 type=ComponentType.APPLICATION)])
    bom = Bom(serial_number=uuid.uuid5(uuid.NAMESPACE_URL, _namespace(image)),
              metadata=BomMetaData(component=top, timestamp=image.built, tools=tools,
                                   supplier=OrganizationalEntity(name="gmi-harness")))
    shipped = inv.kernel_package()
    parts = []
    for p in inv.packages:
        ref = purl(inv, p)
        props = [Property(name=f"{PROPERTY}:source-package", value=p.source),
                 Property(name=f"{PROPERTY}:source-version", value=p.source_version or p.version),
                 Property(name=f"{PROPERTY}:architecture", value=p.arch)]
        props += [Property(name=f"{PROPERTY}:built-using", value=f"{n} {v}") for n, v in p.built_using]
        if p.licence.expression == NOASSERTION:
            props.append(Property(name=f"{PROPERTY}:license", value=NOASSERTION))
        if p.licence.source:
            props.append(Property(name=f"{PROPERTY}:license-source", value=p.licence.source))
        component = Component(
            name=p.name, version=p.version, type=ComponentType.LIBRARY if p is not shipped
            else ComponentType.OPERATING_SYSTEM, bom_ref=ref, purl=PackageURL.from_string(ref),
            licenses=([] if p.licence.expression == NOASSERTION
                      else [LicenseExpression(p.licence.expression)]),
            properties=props)
        if p is shipped and inv.kernel:
            component.components.add(Component(
                name="Linux kernel", version=inv.kernel, type=ComponentType.OPERATING_SYSTEM,
                bom_ref="kernel", description="the kernel the image boots"))
        bom.components.add(component)
        parts.append(component)
    if inv.kernel and shipped is None:
        kernel = Component(name="Linux kernel", version=inv.kernel, bom_ref="kernel",
                           type=ComponentType.OPERATING_SYSTEM, description="the kernel the image boots")
        bom.components.add(kernel)
        parts.append(kernel)
    bom.register_dependency(top, parts)
    return bom


def cyclonedx_json(inv: Inventory, image: Image) -> str:
    from cyclonedx.output.json import JsonV1Dot5

    return JsonV1Dot5(cyclonedx_bom(inv, image)).output_as_string(indent=1)


def validate_cyclonedx(text: str) -> str | None:
    """The CycloneDX 1.5 JSON schema's first complaint about ``text``, or None."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    return None if error is None else str(error.data.message if hasattr(error.data, "message")
                                          else error)


def write_cyclonedx(inv: Inventory, image: Image, path: Path) -> Path:
    text = cyclonedx_json(inv, image)
    problem = validate_cyclonedx(text)
    if problem:
        raise SbomError(f"the CycloneDX document is not valid CycloneDX 1.5: {problem}")
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text + "\n")
    tmp.replace(path)
    return path


def components(path: Path) -> list[Mapping[str, Any]]:
    """The packages a CycloneDX SBOM lists (its top-level components with a purl)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SbomError(f"{path}: not a CycloneDX JSON document ({exc})") from None
    return [c for c in doc.get("components", []) if isinstance(c, dict) and c.get("purl")]


def spdx_packages(path: Path) -> list[Mapping[str, Any]]:
    """The installed packages an SPDX SBOM lists (those with a purl)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SbomError(f"{path}: not an SPDX JSON document ({exc})") from None
    return [p for p in doc.get("packages", []) if isinstance(p, dict)
            and any(r.get("referenceType") == "purl" for r in p.get("externalRefs", []))]


def _key(purl_text: str) -> str:
    from packageurl import PackageURL

    p = PackageURL.from_string(purl_text)
    arch = (p.qualifiers or {}).get("arch", "") if isinstance(p.qualifiers, dict) else ""
    return f"{p.name}:{arch}"


def listed(path: Path) -> list[str]:
    """The packages an SBOM (either format) lists, as ``name:arch``, sorted."""
    if path.name.endswith(SPDX_SUFFIX):
        purls = [r["referenceLocator"] for p in spdx_packages(path) for r in p.get("externalRefs", [])
                 if r.get("referenceType") == "purl"]
    else:
        purls = [str(c["purl"]) for c in components(path)]
    return sorted(_key(p) for p in purls)
