"""The sign-off page's release diff: what changed since the previous release, from the
``gmi-build-record.yml`` of two archives written by the harness's own writer with two
small hand-made records (no image is built). The previous release comes from
``--previous`` (a local archive, its URL, a vmgenie repository index) or from the
newest earlier archive under ``--out``."""

from __future__ import annotations

import copy
import json
import os
import re
import threading
from collections.abc import Iterator
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from harness.archive import writer
from harness.distro import VmgenieNames
from harness.errors import ConfigError
from harness.report import release, signoff
from harness.report.release import Release, compare_versions
from harness.settings import resolve

NAMES = VmgenieNames("Debian", "12")

# Two releases of debian-12, by hand, in the shape the export writes (trimmed).
OLD = {
    "harness": "0.1.0", "backend": "qemu", "distro": "debian-12", "built": "2026-10-02T08:00:00Z",
    "versions": {"os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1.0-25-amd64",
                 "cloud-init": "22.4.2-1", "integration_services": "hyperv-daemons 6.1.106-3"},
    "packages": ["bash 5.2.15-2+b7", "cloud-init 22.4.2-1", "hyperv-daemons 6.1.106-3",
                 "linux-image-6.1.0-25-amd64 6.1.106-3", "openssh-server 1:9.2p1-2+deb12u3",
                 "tzdata 2024a-0+deb12u1", "wget 1.21.3-1+b2"],
    "sizes": {"vhdx_bytes": 1_300_000_000, "virtual_size": 268435456000},
    "check_results": {"test_no_failed_units[debian-12]": "passed",
                      "test_cloud_init_status_done[debian-12]": "failed",
                      "test_user_as_seeded[debian-12]": "passed",
                      "test_kvp_reports_guest_ip[debian-12]": "skipped"},
    "check_items": {"test_no_failed_units[debian-12]": "boots with no errors",
                    "test_cloud_init_status_done[debian-12]": "cloud-init ran on first boot",
                    "test_user_as_seeded[debian-12]": "cloud-init ran on first boot",
                    "test_kvp_reports_guest_ip[debian-12]": "integration services running (Hyper-V)"},
}
NEW = {
    **OLD, "built": "2026-11-28T09:30:00Z", "backend": "hyperv",
    "versions": {"os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1.0-28-amd64",
                 "cloud-init": "22.4.2-1", "integration_services": "hyperv-daemons 6.1.119-1"},
    "packages": ["bash 5.2.15-2+b7", "cloud-init 22.4.2-1", "hyperv-daemons 6.1.119-1",
                 "linux-image-6.1.0-28-amd64 6.1.119-1", "openssh-server 1:9.2p1-2+deb12u4",
                 "tzdata 2024a-0+deb12u1~rc1", "curl 7.88.1-10+deb12u8"],
    "sizes": {"vhdx_bytes": 1_250_000_000, "virtual_size": 268435456000},
    "check_results": {"test_no_failed_units[debian-12]": "passed",
                      "test_cloud_init_status_done[debian-12]": "passed",
                      "test_user_as_seeded[debian-12]": "passed",
                      "test_kvp_reports_guest_ip[debian-12]": "passed"},
}


def write(folder: Path, record: dict, disk: bytes) -> Path:
    """An archive as the export writes it, with ``record`` as its build record."""
    folder.mkdir(parents=True, exist_ok=True)
    vhdx = folder / "disk.vhdx"
    vhdx.write_bytes(disk)
    manifest = writer.manifest(NAMES, checksum="0" * 64, description="Debian 12",
                               maintainer="m", maintainer_email="m@example.org",
                               source_url="https://example.org", created=record["built"])
    archive = writer.write_archive(folder, NAMES, vhdx, manifest, "# readme\n", record, force=True)
    vhdx.unlink()
    return archive


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    old = write(tmp_path / "out" / "2026-10", OLD, b"\0" * 300_000)
    new = write(tmp_path / "out", NEW, b"\1" * 200_000 + bytes(range(256)) * 400)
    return old, new


# --------------------------------------------------------------------------- the diff


def test_the_diff_of_two_hand_made_releases(pair):
    old, new = pair
    d = release.diff(release.read_archive(old), release.read_archive(new))
    p = d["packages"]
    assert p["added"] == [{"name": "curl", "version": "7.88.1-10+deb12u8"},
                          {"name": "linux-image-6.1.0-28-amd64", "version": "6.1.119-1"}]
    assert p["removed"] == [{"name": "linux-image-6.1.0-25-amd64", "version": "6.1.106-3"},
                            {"name": "wget", "version": "1.21.3-1+b2"}]
    assert p["upgraded"] == [
        {"name": "hyperv-daemons", "from": "6.1.106-3", "to": "6.1.119-1"},
        {"name": "openssh-server", "from": "1:9.2p1-2+deb12u3", "to": "1:9.2p1-2+deb12u4"}]
    assert p["downgraded"] == [{"name": "tzdata", "from": "2024a-0+deb12u1", "to": "2024a-0+deb12u1~rc1"}]
    assert p["unchanged"] == 2
    versions = {v["key"]: (v["from"], v["to"], v["changed"]) for v in d["versions"]}
    assert versions["kernel"] == ("6.1.0-25-amd64", "6.1.0-28-amd64", True)
    assert versions["cloud-init"] == ("22.4.2-1", "22.4.2-1", False)
    assert versions["integration_services"][2] is True
    assert d["sizes"]["vhdx"] == {"from": 1_300_000_000, "to": 1_250_000_000, "delta": -50_000_000}
    z = d["sizes"]["zip"]
    assert (z["from"], z["to"]) == (old.stat().st_size, new.stat().st_size)
    assert z["delta"] == new.stat().st_size - old.stat().st_size != 0
    checks = {c["item"]: c for c in d["checks"]}
    assert set(checks) == {"cloud-init ran on first boot", "integration services running (Hyper-V)"}
    assert (checks["cloud-init ran on first boot"]["from"], checks["cloud-init ran on first boot"]["to"]) \
        == ("fail", "pass")
    assert checks["cloud-init ran on first boot"]["tests"] == [
        {"name": "test_cloud_init_status_done", "from": "failed", "to": "passed"}]
    assert checks["integration services running (Hyper-V)"]["from"] == "skipped"
    assert d["previous"]["archive"] == "GMI-Debian-12.zip" and d["previous"]["built"] == OLD["built"]
    json.dumps(d)  # it goes into signoff.json


def test_a_record_without_check_items_takes_the_items_from_the_checks_source(tmp_path):
    older = {k: v for k, v in OLD.items() if k != "check_items"}
    r = release.read_archive(write(tmp_path, older, b"x"))
    assert r.items["test_no_failed_units"] == "boots with no errors"
    assert r.items["test_kvp_reports_guest_ip"] == "integration services running (Hyper-V)"


def test_no_change_means_no_checklist_rows(pair):
    old, _ = pair
    same = release.read_archive(old)
    d = release.diff(same, copy.deepcopy(same))
    assert d["checks"] == [] and not any(d["packages"][k] for k in ("added", "removed", "upgraded"))
    assert d["sizes"]["zip"]["delta"] == 0


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("6.1.119-1", "6.1.106-3", 1), ("1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u4", -1),
    ("2024a-0+deb12u1~rc1", "2024a-0+deb12u1", -1), ("1:1.0", "9.9", 1), ("1.0", "1.0.1", -1),
    ("1.02", "1.2", 0), ("2.0a", "2.0", 1), ("5.14.0-503.el9", "5.14.0-427.el9", 1),
])
def test_versions_compare_as_dpkg_does(a, b, expected):
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


# --------------------------------------------------------------- where the previous one is


def test_by_default_the_newest_earlier_archive_under_out(tmp_path, pair):
    old, new = pair
    out = tmp_path / "out"
    write(out / "2026-09", {**OLD, "built": "2026-09-01T00:00:00Z"}, b"a")  # older still
    write(out / "later", {**NEW, "built": "2026-12-01T00:00:00Z"}, b"b")  # built after this one
    write(out / "runs" / "x", {**OLD, "built": "2026-11-01T00:00:00Z"}, b"c")  # a run folder
    (out / "broken").mkdir()
    (out / "broken" / "GMI-Debian-12.zip").write_bytes(b"not a zip")  # skipped, not fatal
    d = release.release_diff(new, out, ())
    assert d["previous"]["source"] == str(old) and d["previous"]["built"] == OLD["built"]


def test_without_an_earlier_archive_the_page_says_how_to_give_one(tmp_path):
    new = write(tmp_path / "out", NEW, b"x")
    assert release.release_diff(new, tmp_path / "out", ()) == {
        "none": f"no earlier GMI-Debian-12.zip under {tmp_path / 'out'} (give one with "
                "--previous PATH_OR_URL)"}


def test_previous_as_a_local_archive_wins_over_the_search(tmp_path, pair):
    old, new = pair
    elsewhere = write(tmp_path / "releases", {**OLD, "built": "2026-06-01T00:00:00Z"}, b"z")
    d = release.release_diff(new, tmp_path / "out", (str(elsewhere),))
    assert d["previous"]["source"] == str(elsewhere)
    # another distro's --previous is not used for this one
    other = write(tmp_path / "u", OLD, b"u").rename(tmp_path / "u" / "GMI-Ubuntu-24.04.zip")
    d = release.release_diff(new, tmp_path / "out", (str(other),))
    assert d["previous"]["source"] == str(old)


def test_a_previous_release_of_another_distro_is_refused_in_one_line(tmp_path, pair):
    _, new = pair
    wrong = write(tmp_path / "w", {**OLD, "distro": "debian-13"}, b"w")
    d = release.release_diff(new, tmp_path / "out", (str(wrong),))
    assert d == {"error": "the previous release GMI-Debian-12.zip is of debian-13, this one of debian-12"}


class RangeServer:
    """Serves files over HTTP on 127.0.0.1, with Range support unless told otherwise,
    and counts the bytes it sent."""

    def __init__(self, root: Path, ranges: bool = True) -> None:
        self.root, self.ranges, self.sent, self.requests = root, ranges, 0, 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = owner.root / self.path.lstrip("/")
                owner.requests += 1
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                m = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
                if owner.ranges and m:
                    start, end = int(m[1]), min(int(m[2]), len(data) - 1)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                    data = data[start:end + 1]
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                    owner.sent += len(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served(tmp_path: Path, pair) -> Iterator[tuple[RangeServer, Path]]:
    _, new = pair
    web = tmp_path / "web"
    web.mkdir()
    big = write(web, OLD, os.urandom(10 << 20))  # a 10 MiB "disk" (incompressible): never downloaded
    (web / "gmi-repository.dist.yml").write_text(yaml.safe_dump({
        "Debian-12": [{"name": "GMI Debian 12", "version": "12", "url": "PLACEHOLDER"}],
        "Debian-13": [{"name": "GMI Debian 13", "version": "13", "url": "x"}]}))
    server = RangeServer(web)
    index = web / "gmi-repository.dist.yml"
    index.write_text(index.read_text().replace("PLACEHOLDER", f"{server.url}/{big.name}"))
    yield server, new
    server.close()


def test_previous_from_a_url_reads_only_the_record_not_the_disk(served, tmp_path):
    server, new = served
    url = f"{server.url}/GMI-Debian-12.zip"
    d = release.release_diff(new, tmp_path / "out", (url,))
    assert d["previous"]["source"] == url and d["packages"]["upgraded"]
    size = (tmp_path / "web" / "GMI-Debian-12.zip").stat().st_size
    assert d["sizes"]["zip"]["from"] == size
    assert server.sent < size / 10, f"sent {server.sent} of {size} bytes"


@pytest.mark.parametrize("where", ["url", "file"])
def test_previous_from_a_repository_index_follows_the_distros_entry(served, tmp_path, where):
    server, new = served
    index = f"{server.url}/gmi-repository.dist.yml" if where == "url" \
        else str(tmp_path / "web" / "gmi-repository.dist.yml")
    d = release.release_diff(new, tmp_path / "out", (index,))
    assert d["previous"]["source"] == (f"{server.url}/GMI-Debian-12.zip (the Debian-12 entry "
                                       f"of {index})")
    assert d["versions"][1]["from"] == "6.1.0-25-amd64"


def test_index_problems_are_one_line(tmp_path, pair):
    _, new = pair
    index = tmp_path / "gmi-repository.dist.yml"
    index.write_text(yaml.safe_dump({"Debian-13": [{"url": "https://x/GMI-Debian-13.zip"}]}))
    assert release.release_diff(new, tmp_path, (str(index),)) == {
        "error": f"{index}: no entry for Debian-12 in this repository index"}
    index.write_text("Debian-12: [{url: 'file:///etc/passwd'}]\n")
    assert release.release_diff(new, tmp_path, (str(index),)) == {
        "error": f"{index}: the Debian-12 entry's url 'file:///etc/passwd' is not an http(s) URL"}
    index.write_text("Debian-12: [\n")
    assert release.release_diff(new, tmp_path, (str(index),))["error"].startswith(
        f"{index}: not valid YAML (")


def test_a_server_without_range_requests_is_a_one_line_error(tmp_path, pair):
    old, new = pair
    server = RangeServer(old.parent, ranges=False)
    try:
        d = release.release_diff(new, tmp_path, (f"{server.url}/GMI-Debian-12.zip",))
        missing = release.release_diff(new, tmp_path, (f"{server.url}/nope/GMI-Debian-12.zip",))
    finally:
        server.close()
    assert d == {"error": f"{server.url}/GMI-Debian-12.zip: the server does not answer HTTP range "
                          "requests (status 200); download the archive and pass its path to --previous"}
    assert missing == {"error": f"{server.url}/nope/GMI-Debian-12.zip: HTTP 404 Not Found"}


def test_previous_setting_is_checked_before_anything_runs(tmp_path, pair):
    old, _ = pair
    assert resolve({"previous": [str(old)]}, env={}).previous == (str(old.resolve()),)
    assert resolve({}, env={"GMI_PREVIOUS": "https://gmi.example.org/gmi-repository.dist.yml"}).previous \
        == ("https://gmi.example.org/gmi-repository.dist.yml",)
    for bad, why in [(str(tmp_path / "nope.zip"), "no such file"),
                     ("ftp://host/GMI-Debian-12.zip", "only http(s) URLs and local paths"),
                     (str(Path(__file__)), "neither a .zip archive nor a .yml repository index")]:
        with pytest.raises(ConfigError, match=re.escape(why)) as caught:
            resolve({"previous": [bad]}, env={})
        assert str(caught.value).startswith("--previous: ") and "\n" not in str(caught.value)


def test_the_export_records_each_checks_item(tmp_path):
    """What the next release's diff needs: each check's checklist item in the record."""
    from harness.archive.export import public_record
    from harness.build import Build
    from harness.distro import load

    b = Build(load("debian-12"), resolve({"out": str(tmp_path)}, env={}), None, "RUN",  # type: ignore[arg-type]
              tmp_path, tmp_path)
    record = public_record(b, {"test_a[debian-12]": "passed"}, {"test_a[debian-12]": "boots with no errors"})
    assert record["check_items"] == {"test_a[debian-12]": "boots with no errors"}


# --------------------------------------------------------------------------- the page


def subject_with(diff: dict, tmp_path: Path, name: str = "debian-12") -> list[signoff.Subject]:
    """A one-subject run's signoff.json with ``diff``, read back as the page reads it."""
    doc = signoff.run_data({"id": "R1"}, [{"subject": name, "title": "GMI Debian 12",
                                           "release_diff": diff}], [])
    folder = tmp_path / "run"
    folder.mkdir(exist_ok=True)
    return signoff.load_data(signoff.write_data(folder, doc))


def test_the_page_shows_the_release_diff(pair, tmp_path):
    old, new = pair
    subjects = subject_with(release.diff(release.read_archive(old), release.read_archive(new)), tmp_path)
    html = signoff.render(subjects, tmp_path / "signoff.html").read_text()
    section = html[html.index('id="diff-debian-12"'):html.index("<h2>What was built</h2>")]
    assert "Since the previous release" in html
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", section)).split())
    assert "2 upgraded" in text and "2 added" in text and "2 removed" in text and "1 downgraded" in text
    assert "VHDX -47.7 MiB" in text
    assert re.search(r'<tr class="changed" data-version="kernel"><td>kernel</td><td class="mono">'
                     r"6.1.0-25-amd64</td><td class=\"mono\">6.1.0-28-amd64</td>", section)
    assert '<tr class="" data-version="cloud-init">' in section
    assert re.search(r'data-item="cloud-init ran on first boot">.*?badge fail.*?badge pass', section, re.S)
    assert "test_cloud_init_status_done: failed &rarr; passed" in section
    assert "openssh-server" in text and "1:9.2p1-2+deb12u3 → 1:9.2p1-2+deb12u4" in text
    assert "+ curl" in text and "\u2212 wget" in text  # (a minus sign)
    assert "2 checklist item(s) changed" in text and "for the worse" not in text


def test_an_item_that_got_worse_is_called_out(pair, tmp_path):
    old, new = pair
    backwards = release.diff(release.read_archive(new), release.read_archive(old))
    page = signoff.render(subject_with(backwards, tmp_path), tmp_path / "signoff.html").read_text()
    assert "2 checklist item(s) changed, 1 for the worse" in " ".join(re.sub(r"<[^>]+>", " ", page).split())


@pytest.mark.parametrize(("diff", "shown"), [
    ({"error": "https://x/GMI-Debian-12.zip: HTTP 404 Not Found"},
     'data-diff="error">no release diff: https://x/GMI-Debian-12.zip: HTTP 404 Not Found'),
    ({"none": "no earlier GMI-Debian-12.zip under /out"}, 'data-diff="none">no earlier'),
])
def test_the_page_says_why_there_is_no_diff(tmp_path, diff, shown):
    html = signoff.render(subject_with(diff, tmp_path), tmp_path / "signoff.html").read_text()
    assert shown in html


def test_untrusted_diff_data_is_cleaned_and_escaped(pair, tmp_path):
    old, new = pair
    d = release.diff(release.read_archive(old), release.read_archive(new))
    d["packages"]["added"].append({"name": "<script>alert(1)</script>", "version": 7})
    d["packages"]["upgraded"] = "not a list"
    d["sizes"]["vhdx"]["delta"] = "huge"
    d["versions"].append(["junk"])
    d["checks"][0]["tests"] = [{"name": {"nested": 1}, "from": None}]
    subjects = subject_with(d, tmp_path)
    got = subjects[0].release_diff
    assert got["packages"]["added"][-1] == {"name": "<script>alert(1)</script>", "version": ""}
    assert got["packages"]["upgraded"] == [] and got["sizes"]["vhdx"]["delta"] is None
    assert got["checks"][0]["tests"] == [{"name": "", "from": "", "to": ""}]
    html = signoff.render(subjects, tmp_path / "signoff.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert release.clean("text") == {} and release.clean(None) == {}


def test_a_run_attaches_the_diff_to_each_archive_it_wrote(pair, tmp_path):
    """What the plugin calls at the end of the run, on the build summaries."""
    old, new = pair
    summaries = [{"subject": "debian-12", "archive": str(new)}, {"subject": "debian-13", "archive": ""}]
    release.attach_diffs(summaries, tmp_path / "out", ())
    assert summaries[0]["release_diff"]["previous"]["source"] == str(old)
    assert "release_diff" not in summaries[1]


def test_release_page_in_headless_chromium(pair, tmp_path):
    """The page with a release diff as a person sees it (kept under reports/screenshots/)."""
    from test_signoff import SCREENSHOTS, chromium, headless, png_size

    browser = chromium()
    old, new = pair
    subjects = subject_with(release.diff(release.read_archive(old), release.read_archive(new)), tmp_path)
    page = signoff.render(subjects, tmp_path / "signoff.html")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "signoff-release-diff.png"
    shot.unlink(missing_ok=True)
    headless(browser, tmp_path / "profile", "--window-size=1440,1400", f"--screenshot={shot}",
             page.as_uri())
    assert png_size(shot) == (1440, 1400) and shot.stat().st_size > 30_000
    dom = headless(browser, tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    assert 'data-version="kernel"' in dom and "6.1.0-28-amd64" in dom


def test_release_facts_of_an_archive_are_only_read(pair):
    old, _ = pair
    before = old.read_bytes()
    r = release.read_archive(old)
    assert isinstance(r, Release) and old.read_bytes() == before
    assert r.vhdx_bytes == 1_300_000_000 and r.zip_bytes == len(before)
