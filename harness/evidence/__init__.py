"""Release evidence for each GMI: what is in it (SBOMs), what is known to be vulnerable
in it, who built it from what (provenance), checksums signed with the builder's key,
and whether two builds give the same root filesystem.

- :mod:`.inventory`: the image's installed packages as recorded at the seal (dpkg's status
  and the machine-readable copyright files; ``rpm -qa``), never the host's
- :mod:`.licenses`: Debian copyright short names as SPDX license expressions
- :mod:`.sbom`: SPDX 2.3 and CycloneDX 1.5 JSON, written with spdx-tools and
  cyclonedx-python-lib and checked by their own validators
- :mod:`.versions`: dpkg's and rpm's version order
- :mod:`.vulns`: the SBOM's packages against Debian's security tracker data or OSV
  records (``--vuln-db``), the report and ``--vuln-gate``
- :mod:`.signing`: ``SHA256SUMS`` of the outputs, signed with OpenPGP (gpg) or an SSH key
  (``ssh-keygen -Y sign``), and verified before ``--gmi`` reads an archive
- :mod:`.provenance`: an in-toto Statement v1 with a SLSA Provenance v1 predicate in a
  DSSE envelope
- :mod:`.release`: what the stages and the export call
- :mod:`.repro`: two archives' root filesystems compared file by file, offline
"""
