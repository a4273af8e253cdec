"""Answer files rendered for every catalogued distro, parsed with real parsers (YAML,
XML, JSON, pykickstart, d-i's preseed line format), checked for what matters: one root
partition plus the ESP and no LVM, the admin user, the packages, the build's SSH
key, passwords only as SHA-512 crypt hashes; and the volumes they travel on, read
back with pycdlib."""

from __future__ import annotations

import gzip
import re
import subprocess
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from host_tools import needs

from harness import distro
from harness.build import Credentials
from harness.errors import GmiError
from harness.media import answers
from harness.media import iso as volumes
from harness.media.answers.sha512crypt import sha512_crypt

ALL = distro.known_distros()
CREDS = Credentials.generate("gmiadmin", "gmi-build-test")


def of_kind(kind: str) -> list[str]:
    return [n for n in ALL if distro.load(n).install.answer == kind]


def hash_matches(h: str, password: str) -> bool:
    salt = h.split("$")[2]
    return h.startswith("$6$") and sha512_crypt(password, salt) == h


def no_plaintext(files: dict[str, str]) -> None:
    for name, text in files.items():
        for pw in (CREDS.root_password, CREDS.admin_password):
            assert pw not in text, f"a build password in plain text in {name}"


def rendered(name: str) -> tuple[distro.Distro, dict[str, str]]:
    d = distro.load(name)
    return d, answers.render(d, CREDS)


def test_every_kind_is_covered():
    assert {distro.load(n).install.answer for n in ALL} == set(answers.FILES)


# --- Debian preseed ------------------------------------------------------------------


def parse_preseed(text: str) -> dict[str, tuple[str, str]]:
    """d-i's format: 'owner question type value', backslash continues a line."""
    out: dict[str, tuple[str, str]] = {}
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        owner, question, qtype, *value = line.split(None, 3)
        assert owner in ("d-i", "tasksel", "popularity-contest"), line
        out[question] = (qtype, value[0] if value else "")
    return out


@pytest.mark.parametrize("name", of_kind("preseed"))
def test_preseed(name: str):
    d, files = rendered(name)
    assert list(files) == ["preseed.cfg"]
    p = parse_preseed(files["preseed.cfg"])
    assert p["partman-auto/method"] == ("string", "regular")  # not lvm, not crypto
    recipe = p["partman-auto/expert_recipe"][1]
    assert recipe.count("mountpoint{ / }") == 1 and recipe.count("method{ efi }") == 1
    assert "lvm" not in recipe and "swap" not in recipe
    assert f"filesystem{{ {d.install.root_fs} }}" in recipe and f"{d.install.esp_size_mib} free" in recipe
    assert p["partman-auto/disk"] == ("string", "/dev/sda")
    assert recipe.count(" . ") + recipe.endswith(" .") == 2  # exactly two partitions
    assert p["partman-basicfilesystems/no_swap"] == ("boolean", "false")
    assert p["passwd/username"] == ("string", "gmiadmin")
    assert hash_matches(p["passwd/root-password-crypted"][1], CREDS.root_password)
    assert hash_matches(p["passwd/user-password-crypted"][1], CREDS.admin_password)
    assert not any(q.endswith("password") or q.endswith("password-again") for q in p)
    assert set(p["pkgsel/include"][1].split()) >= {"openssh-server", "sudo", "hyperv-daemons"}
    assert p["tasksel/first"][1] == "ssh-server"
    assert p["apt-setup/cdrom/set-first"] == ("boolean", "false")
    assert p["grub-installer/force-efi-extra-removable"] == ("boolean", "true")
    assert p["debian-installer/exit/poweroff"] == ("boolean", "true")
    late = p["preseed/late_command"][1]
    assert CREDS.key.public_openssh.strip() in late and "usermod -aG sudo gmiadmin" in late
    assert p["mirror/http/hostname"][1] == "deb.debian.org"
    no_plaintext(files)


# debconf's own syntax check: tests/test_answers_upstream.py.


def test_preseed_follows_the_mirror_setting():
    d = distro.load("debian-12")
    files = answers.render(d, CREDS, mirror="http://mirror.example.org/debian-mirror")
    p = parse_preseed(files["preseed.cfg"])
    assert p["mirror/http/hostname"][1] == "mirror.example.org"
    assert p["mirror/http/directory"][1] == "/debian-mirror"


# --- Ubuntu autoinstall ------------------------------------------------------------


@pytest.mark.parametrize("name", of_kind("autoinstall"))
def test_autoinstall(name: str):
    d, files = rendered(name)
    assert set(files) == {"user-data", "meta-data"}
    assert files["user-data"].startswith("#cloud-config\n")
    ai = yaml.safe_load(files["user-data"])["autoinstall"]
    assert ai["version"] == 1 and ai["shutdown"] == "poweroff"
    config = ai["storage"]["config"]
    assert ai["storage"]["swap"] == {"size": 0}
    assert not [c for c in config if c["type"].startswith("lvm") or c["type"] in ("raid", "dm_crypt")]
    parts = [c for c in config if c["type"] == "partition"]
    mounts = {c["path"]: c["device"] for c in config if c["type"] == "mount"}
    assert len(parts) == 2 and sorted(mounts) == ["/", "/boot/efi"]
    fmt = {c["id"]: c for c in config if c["type"] == "format"}
    assert fmt[mounts["/"]]["fstype"] == d.install.root_fs
    assert fmt[mounts["/boot/efi"]]["fstype"] == "fat32"
    esp = next(p for p in parts if p["id"] == fmt[mounts["/boot/efi"]]["volume"])
    assert esp["grub_device"] is True and esp["flag"] == "boot"
    assert next(p for p in parts if p["id"] == fmt[mounts["/"]]["volume"])["size"] == -1
    assert ai["identity"]["username"] == "gmiadmin"
    assert hash_matches(ai["identity"]["password"], CREDS.admin_password)
    assert ai["ssh"] == {"install-server": True, "allow-pw": False,
                         "authorized-keys": [CREDS.key.public_openssh.strip()]}
    assert {"linux-cloud-tools-virtual", "sudo", "openssh-server"} <= set(ai["packages"])
    root = [c for c in ai["late-commands"] if "root" in c and "usermod -p" in c]
    assert len(root) == 1 and hash_matches(re.search(r"'(\$6\$[^']+)'", root[0]).group(1),
                                           CREDS.root_password)
    meta = yaml.safe_load(files["meta-data"])
    assert meta["instance-id"].startswith("gmi-install-")
    no_plaintext(files)


# --- Fedora / Rocky kickstart ------------------------------------------------------


@pytest.mark.parametrize("name", of_kind("kickstart"))
def test_kickstart_parses_with_pykickstart(name: str):
    from pykickstart.constants import KS_SHUTDOWN
    from pykickstart.parser import KickstartParser
    from pykickstart.version import makeVersion, stringToVersion

    d, files = rendered(name)
    assert list(files) == ["ks.cfg"]
    handler = makeVersion(stringToVersion(d.install.answer_rules.removeprefix("pykickstart-")))
    parser = KickstartParser(handler)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated command or option either
        parser.readKickstartFromString(files["ks.cfg"])  # raises on any syntax error
    assert not handler.autopart.autopart  # no automatic (LVM) layout
    assert not handler.logvol.dataList() and not handler.volgroup.dataList()
    parts = {p.mountpoint: p for p in handler.partition.dataList()}
    assert sorted(parts) == ["/", "/boot/efi"]
    assert parts["/"].grow and parts["/"].fstype == d.install.root_fs
    assert parts["/boot/efi"].fstype == "efi" and parts["/boot/efi"].size == d.install.esp_size_mib
    assert handler.clearpart.initAll and handler.clearpart.disklabel == "gpt"
    assert handler.rootpw.isCrypted and hash_matches(handler.rootpw.password, CREDS.root_password)
    user = handler.user.dataList()[0]
    assert user.name == "gmiadmin" and user.isCrypted and "wheel" in user.groups
    assert hash_matches(user.password, CREDS.admin_password)
    keys = {k.username: k.key for k in handler.sshkey.dataList()}
    assert keys == {"root": CREDS.key.public_openssh.strip(), "gmiadmin": CREDS.key.public_openssh.strip()}
    assert {"openssh-server", "sudo", "hyperv-daemons"} <= set(handler.packages.packageList)
    assert "core" in [g.name for g in handler.packages.groupList]
    assert handler.reboot.action == KS_SHUTDOWN and handler.reboot.eject is False  # poweroff
    assert "sshd" in handler.services.enabled
    no_plaintext(files)


def test_rocky_kickstart_adds_the_network_baseos_repo():
    from pykickstart.parser import KickstartParser
    from pykickstart.version import makeVersion, stringToVersion

    handler = makeVersion(stringToVersion("RHEL9"))
    KickstartParser(handler).readKickstartFromString(rendered("rocky-9")[1]["ks.cfg"])
    assert handler.method.method == "cdrom"
    assert [r.name for r in handler.repo.dataList()] == ["BaseOS-net"]


# --- openSUSE AutoYaST -------------------------------------------------------------


NS = {"y": "http://www.suse.com/1.0/yast2ns", "c": "http://www.suse.com/1.0/configns"}


@pytest.mark.parametrize("name", of_kind("autoyast"))
def test_autoyast_parses_as_xml(name: str):
    d, files = rendered(name)
    assert list(files) == ["autoinst.xml"]
    root = ET.fromstring(files["autoinst.xml"])
    assert root.tag == "{http://www.suse.com/1.0/yast2ns}profile"
    assert root.findtext("y:general/y:mode/y:confirm", namespaces=NS) == "false"
    assert root.findtext("y:general/y:mode/y:final_halt", namespaces=NS) == "true"
    drives = root.findall("y:partitioning/y:drive", NS)
    assert len(drives) == 1 and drives[0].findtext("y:use", namespaces=NS) == "all"
    assert drives[0].find("y:type", NS) is None  # CT_DISK (not CT_LVM)
    parts = drives[0].findall("y:partitions/y:partition", NS)
    mounts = {p.findtext("y:mount", namespaces=NS): p for p in parts}
    assert sorted(mounts) == ["/", "/boot/efi"]
    assert mounts["/"].findtext("y:filesystem", namespaces=NS) == d.install.root_fs
    assert mounts["/"].findtext("y:size", namespaces=NS) == "max"
    assert not any(p.find("y:lvm_group", NS) is not None for p in parts)
    users = {u.findtext("y:username", namespaces=NS): u for u in root.findall("y:users/y:user", NS)}
    assert sorted(users) == ["gmiadmin", "root"]
    for user, pw in (("root", CREDS.root_password), ("gmiadmin", CREDS.admin_password)):
        u = users[user]
        assert u.findtext("y:encrypted", namespaces=NS) == "true"
        assert hash_matches(u.findtext("y:user_password", namespaces=NS) or "", pw)
        assert u.findtext("y:authorized_keys/y:listentry", namespaces=NS) == CREDS.key.public_openssh.strip()
    pkgs = {p.text for p in root.findall("y:software/y:packages/y:package", NS)}
    assert {"openssh", "sudo", "hyper-v"} <= pkgs
    assert root.findtext("y:bootloader/y:loader_type", namespaces=NS) == "grub2-efi"
    assert "sshd" in [s.text for s in root.findall("y:services-manager/y:services/y:enable/y:service", NS)]
    no_plaintext(files)


def test_autoyast_escapes_values():
    import dataclasses

    d = distro.load("opensuse-leap-15.6")
    odd = dataclasses.replace(d, description="<Leap & friends>")
    text = answers.render(odd, CREDS)["autoinst.xml"]
    ET.fromstring(text)  # still well-formed
    assert "&lt;Leap &amp; friends&gt;" in text


# --- openSUSE Leap 16: Agama's JSON profile ---------------------------------------


@pytest.mark.parametrize("name", of_kind("agama"))
def test_agama_profile(name: str):
    import json

    d, files = rendered(name)
    assert list(files) == ["autoinst.json"]
    p = json.loads(files["autoinst.json"])
    assert p["product"] == {"id": answers.AGAMA_PRODUCTS[d.os_release.version_id]}
    storage = p["storage"]
    assert set(storage) == {"boot", "drives"} and storage["boot"] == {"configure": False}
    assert len(storage["drives"]) == 1  # no volume groups, no RAID
    drive = storage["drives"][0]
    assert drive["search"] == "/dev/sda" and drive["ptableType"] == "gpt"
    wipe, *parts = drive["partitions"]
    assert wipe == {"search": "*", "delete": True}  # whatever was on the disk goes
    mounts = {part["filesystem"]["path"]: part for part in parts}
    assert sorted(mounts) == ["/", "/boot/efi"]  # two partitions: no swap, no /home
    assert mounts["/"]["filesystem"]["type"] == d.install.root_fs and "max" not in mounts["/"]["size"]
    assert mounts["/boot/efi"]["id"] == "esp" and mounts["/boot/efi"]["filesystem"]["type"] == "vfat"
    assert mounts["/boot/efi"]["size"] == f"{d.install.esp_size_mib} MiB"
    assert p["root"]["hashedPassword"] is True and hash_matches(p["root"]["password"], CREDS.root_password)
    assert p["root"]["sshPublicKey"] == CREDS.key.public_openssh.strip()
    user = p["user"]
    assert user["userName"] == "gmiadmin" and user["hashedPassword"] is True
    assert hash_matches(user["password"], CREDS.admin_password)
    assert {"openssh", "sudo", "hyper-v"} <= set(p["software"]["packages"])
    (post,) = p["scripts"]["post"]
    assert post["chroot"] is True and post["content"].startswith("#!/bin/bash\nset -euo pipefail\n")
    key = CREDS.key.public_openssh.strip()
    assert f"echo '{key}' > /home/gmiadmin/.ssh/authorized_keys" in post["content"]
    assert "usermod -aG wheel gmiadmin" in post["content"]
    subprocess.run(["bash", "-n", "-c", post["content"]], check=True)
    no_plaintext(files)


def test_agama_profile_escapes_values_and_knows_its_product():
    import dataclasses
    import json

    d = distro.load("opensuse-leap-16.0")
    odd = dataclasses.replace(d, install=dataclasses.replace(d.install, timezone='Etc/"UTC"\\'))
    assert json.loads(answers.render(odd, CREDS)["autoinst.json"])["localization"]["timezone"] == \
        'Etc/"UTC"\\'
    unknown = dataclasses.replace(d, os_release=dataclasses.replace(d.os_release, version_id="16.9"))
    with pytest.raises(GmiError, match=r"no Agama product id known for openSUSE Leap 16\.9"):
        answers.render(unknown, CREDS)


# --- shared rules ------------------------------------------------------------------


def test_values_with_quotes_or_newlines_are_refused():
    bad = Credentials("ad'min", "a", "b", CREDS.key)
    with pytest.raises(GmiError, match="admin_user may not contain quotes"):
        answers.render(distro.load("fedora-42"), bad)


def test_distro_without_answer_file_says_so():
    import dataclasses

    d = distro.load("debian-12")
    plain = dataclasses.replace(d, install=dataclasses.replace(d.install, answer=""))
    with pytest.raises(GmiError, match="has no answer file"):
        answers.render(plain, CREDS)


def test_template_field_without_value_is_an_error():
    with pytest.raises(GmiError, match=r"\{\{nope\}\} has no value"):
        answers.fill("a {{nope}} b", {})


def test_hashes_are_salted_per_render():
    a = answers.render(distro.load("fedora-42"), CREDS)["ks.cfg"]
    b = answers.render(distro.load("fedora-42"), CREDS)["ks.cfg"]
    assert a != b  # fresh salts: equal passwords do not give equal hashes


# --- SHA-512 crypt -----------------------------------------------------------------


@pytest.mark.parametrize("password, salt, rounds, expected", [
    # Drepper's specification's test vectors
    ("Hello world!", "saltstring", 5000,
     "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
    ("Hello world!", "saltstringsaltstring", 10000,
     "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/"
     "YTBmSK6H9qs/y3RnOaw5v."),
    ("we have a short salt string but not a short password", "short", 77777,
     "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelF"
     "l5CxtgfiAc0"),
])
def test_sha512_crypt_specification_vectors(password, salt, rounds, expected):
    assert sha512_crypt(password, salt, rounds) == expected


@needs("openssl")
@pytest.mark.parametrize("password", ["password", "Zx9" * 30, "ümlaut-pässword", "a"])
def test_sha512_crypt_matches_openssl(password: str):
    salt = "Ab3./xyz0123"
    out = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=password,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert sha512_crypt(password, salt) == out


def test_sha512_crypt_rejects_a_bad_salt():
    with pytest.raises(ValueError, match="salt"):
        sha512_crypt("x", "bad$salt")


# --- the media they travel on ------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in ALL if distro.load(n).install.answer_label])
def test_answer_volume_reads_back_with_its_label(name: str, tmp_path: Path):
    d, files = rendered(name)
    vol = volumes.write_volume(files, tmp_path / "answers.iso", d.install.answer_label)
    label, back = volumes.read_volume(vol)
    assert label == d.install.answer_label and back == files
    assert not list(tmp_path.glob("*.part"))


def read_newc(data: bytes) -> dict[str, bytes]:
    files, pos = {}, 0
    while True:
        assert data[pos:pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        size, namesize = fields[6], fields[11]
        pos += 110
        name = data[pos:pos + namesize - 1].decode()
        pos += namesize + (-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            return files
        files[name] = data[pos:pos + size]
        pos += size + (-size % 4)


def test_preseed_appended_to_the_initrd(tmp_path: Path):
    original = gzip.compress(b"original initramfs cpio stands in here")
    initrd = tmp_path / "initrd.gz"
    initrd.write_bytes(original)
    files = answers.render(distro.load("debian-12"), CREDS)
    out = volumes.append_to_initrd(initrd, files, tmp_path / "initrd-preseed.gz")
    data = out.read_bytes()
    assert data.startswith(original)  # the installer's own archive, untouched
    extra = gzip.decompress(data[len(original):])
    assert read_newc(extra) == {"preseed.cfg": files["preseed.cfg"].encode()}
    assert gzip.decompress(data).startswith(b"original initramfs")  # one stream of members


@needs("xorriso")
def test_remastered_iso_holds_preseed_and_menu(tmp_path: Path):
    src = tmp_path / "src"
    (src / "boot/grub").mkdir(parents=True)
    (src / "install.amd").mkdir()
    (src / "boot/grub/grub.cfg").write_text("menuentry 'Graphical install' {}\n")
    (src / "install.amd/vmlinuz").write_bytes(b"kernel")
    official = tmp_path / "debian.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-r", "-J", "-V", "Debian 12 amd64 n", "-o",
                    str(official), str(src)], check=True, capture_output=True)
    d = distro.load("debian-12")
    files = answers.render(d, CREDS)
    out = volumes.remaster(official, tmp_path / "remastered.iso", files, d.install.remaster_grub_cfg)
    for inside, expected in (("/preseed.cfg", files["preseed.cfg"]),
                             ("/boot/grub/grub.cfg", d.install.remaster_grub_cfg),
                             ("/install.amd/vmlinuz", "kernel")):
        volumes.extract(out, inside, tmp_path / "x")
        assert (tmp_path / "x").read_text() == expected, inside
    assert volumes.volume_label(out) == "Debian 12 amd64 n"
    assert "preseed/file=/cdrom/preseed.cfg" in d.install.remaster_grub_cfg


def test_extract_names_a_missing_file(tmp_path: Path):
    vol = volumes.write_volume({"a.txt": "x"}, tmp_path / "v.iso", "VOL")
    with pytest.raises(GmiError, match=r"/casper/vmlinuz is not on v\.iso"):
        volumes.extract(vol, "/casper/vmlinuz", tmp_path / "out")


def test_not_an_iso_is_a_clear_error(tmp_path: Path):
    bogus = tmp_path / "x.iso"
    bogus.write_bytes(b"\0" * 70000)
    with pytest.raises(GmiError, match=r"x\.iso is not an ISO 9660 image .* check --iso"):
        volumes.volume_label(bogus)


@pytest.mark.parametrize("name", [n for n in ALL if distro.load(n).install.answer != "preseed"])
def test_answer_file_puts_shim_on_the_removable_media_path(name: str, tmp_path: Path):
    """A new VM (vmgenie's) has no UEFI boot entries: the install itself must leave
    EFI/BOOT/BOOTX64.EFI (d-i does it through force-efi-extra-removable)."""
    d, files = rendered(name)
    text = "\n".join(files.values())
    script = answers.efi_fallback_script(d)
    if d.install.answer == "autoinstall":
        script = answers.efi_fallback_script(d, "/target").replace("\n", " && ")
        assert script in yaml.safe_load(files["user-data"])["autoinstall"]["late-commands"]
    elif d.install.answer == "autoyast":
        root = ET.fromstring(files["autoinst.xml"])
        source = root.findtext("y:scripts/y:chroot-scripts/y:script/y:source", namespaces=NS)
        assert source is not None and source.strip() == script
    elif d.install.answer == "agama":
        import json

        assert script in json.loads(files["autoinst.json"])["scripts"]["post"][0]["content"]
    else:
        assert "%post --erroronfail\n# The removable-media boot path" in text and script in text
    # run it against a fake ESP: the vendor's shim lands on the fallback path
    esp = tmp_path / d.boot.esp_mount.lstrip("/")
    vendor = esp / d.boot.efi_vendor_dir
    vendor.mkdir(parents=True)
    for src in d.boot.efi_fallback.values():
        (vendor / src).write_text(src)
    subprocess.run(["sh", "-e", "-c", answers.efi_fallback_script(d, str(tmp_path))], check=True)
    for dst, src in d.boot.efi_fallback.items():
        assert (esp / dst).read_text() == src


def test_efi_fallback_joined_into_one_command_fails_when_a_copy_fails(tmp_path: Path):
    """Autoinstall joins the copies with && into one late-command: a failed cp must fail
    it (unbraced, `[ -e X ] || cp ... && [ -e Y ] || cp ...` hides it)."""

    d = distro.load("ubuntu-24.04")
    root = tmp_path / "target"
    vendor = root / d.boot.esp_mount.lstrip("/") / d.boot.efi_vendor_dir
    vendor.mkdir(parents=True)
    srcs = list(d.boot.efi_fallback.values())
    for src in srcs[:-1]:  # the last one is missing
        (vendor / src).write_bytes(b"efi")
    line = answers.efi_fallback_script(d, str(root)).replace("\n", " && ")
    assert subprocess.run(["sh", "-c", line]).returncode != 0
    (vendor / srcs[-1]).write_bytes(b"efi")
    assert subprocess.run(["sh", "-c", line]).returncode == 0
    for dst in d.boot.efi_fallback:
        assert (root / d.boot.esp_mount.lstrip("/") / dst).read_bytes() == b"efi"
