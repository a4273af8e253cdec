"""The sign-off page: from recorded runs (real junit.xml and logs of earlier debian-12
builds, trimmed, in tests/data/runs), from a fake two-distro run under xdist, merged
from several runs with --signoff-from, and rendered in real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import matrix_project
import pytest

from harness.report import signoff

pytest_plugins = ["pytester"]

DATA = Path(__file__).parent / "data" / "runs"
RECORDED = sorted(DATA.iterdir())  # two real debian-12 runs from before signoff.json
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "reports" / "screenshots"  # gitignored (reports/*)


class Page(HTMLParser):
    """What a person sees in the matrix, read back from the HTML."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.columns: list[str] = []  # subjects, left to right
        self.cells: dict[tuple[str, str], str] = {}  # (item, subject) -> result
        self.by_run: dict[tuple[str, str], str] = {}  # (item, run) -> result
        self.verdicts: dict[str, str] = {}
        self.links: list[str] = []
        self.external: list[str] = []  # anything the page would fetch
        self.row = ""
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "data-item" in a:
            self.row = a["data-item"] or ""
        if tag == "th" and "data-subject" in a:
            self.columns.append(a["data-subject"] or "")
        if tag == "td" and "data-result" in a:
            self.cells[(self.row, a["data-subject"] or "")] = a["data-result"] or ""
            self.by_run[(self.row, a["data-run"] or "")] = a["data-result"] or ""
        if tag == "td" and "data-verdict" in a:
            self.verdicts[a["data-subject"] or ""] = a["data-verdict"] or ""
        if tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")
        if tag in ("script", "link", "img", "iframe") or (tag != "a" and "src" in a):
            self.external.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


# ------------------------------------------------------------ from recorded results


def test_stage_rows_follow_the_procedure_whatever_order_the_timings_come_in():
    """signoff.json files written before the fix had their timings sorted by name."""
    timings = {"cleanup": 18.0, "clone: boot to SSH": 97.8, "clone: cloud-init done": 51.5,
               "cloud_init": 272.8, "export": 16.5, "hyperv": 110.4, "provision": 159.1,
               "provision: disk": 2.4, "seal": 13.1, "update": 316.2,
               "update: restart into the new kernel": 95.8}
    s = signoff.Subject(subject="debian-13", timings=timings)
    assert s.stage_rows == [
        ("provision", 159.1, False), ("provision: disk", 2.4, True), ("update", 316.2, False),
        ("update: restart into the new kernel", 95.8, True), ("cloud_init", 272.8, False),
        ("hyperv", 110.4, False), ("cleanup", 18.0, False), ("seal", 13.1, False),
        ("clone: boot to SSH", 97.8, False), ("clone: cloud-init done", 51.5, False),
        ("export", 16.5, False)]


def test_recorded_run_is_read_from_its_junit_xml():
    """An older run (no signoff.json): outcomes from junit.xml, checklist items from the
    checks' @checklist lines, stage durations from build.log."""
    [s] = signoff.load_junit(DATA / "20261126-045955-29453")
    assert s.subject == "debian-12" and len(s.tests) == 32
    failed = sorted(t.name for t in s.tests if t.result == signoff.FAIL)
    assert failed == ["test_export_gmi_archive[debian-12]", "test_secure_boot_is_on[debian-12]"]
    assert s.timings["update"] == 286.3 and s.timings["clone: boot to SSH"] == 41.0
    rows = [name for name, _, _ in s.stage_rows]
    assert rows[:2] == ["provision", "provision: debootstrap"] and rows[-3:] == [
        "clone: boot to SSH", "clone: cloud-init done", "export"]
    assert s.stage_seconds == pytest.approx(99.7 + 286.3 + 155.6 + 73.8 + 14.4 + 7.9 + 0.0)
    assert s.backend == "qemu"
    assert s.cell("boots with no errors").result == signoff.FAIL
    assert s.cell("DHCP assigns an IPv4 address on eth0").result == signoff.PASS
    skipped = s.cell("integration services running (Hyper-V)")
    assert skipped.result == signoff.SKIP and "VMBus" in skipped.reasons[0]
    assert s.verdict == signoff.FAIL
    assert "logs/debian-12/clone.serial.log" in s.logs


def test_page_from_two_recorded_runs_parsed_back(tmp_path):
    page = signoff.render(signoff.collect(RECORDED), tmp_path / "out" / "signoff.html")
    html = page.read_text()
    p = Page(html)
    assert p.columns == ["debian-12", "debian-12"]
    # the earlier run left the build key behind; the later one did not
    assert p.by_run[("no leftover build artifacts", "20261126-044445-21799")] == "fail"
    assert p.by_run[("no leftover build artifacts", "20261126-045955-29453")] == "pass"
    assert all(v == "pass" for (item, _), v in p.by_run.items()
               if item == "DHCP assigns an IPv4 address on eth0")
    assert set(p.verdicts.values()) == {"fail"}
    assert not p.external, f"the page fetches {p.external}: it must be self-contained"
    assert p.links and all((page.parent / href).resolve().is_file() for href in p.links), p.links
    text = " ".join(p.text)
    assert "20261126-044445-21799" in text and "286 s" not in text  # durations humanised
    assert "4 min 46 s" in text  # the update stage of the later run


def test_secrets_never_reach_the_page(tmp_path):
    from harness.errors import register_secret

    run = tmp_path / "runs" / "r1"
    shutil.copytree(DATA / "20261126-045955-29453", run)
    junit = run / "junit.xml"
    junit.write_text(junit.read_text().replace("Unexpected exit code 1", "Unexpected pw hunter2-XYZ"))
    register_secret("hunter2-XYZ")
    page = signoff.render(signoff.collect([tmp_path]), tmp_path / "signoff.html").read_text()
    assert "hunter2-XYZ" not in page and "Unexpected pw ***" in page


def test_untrusted_signoff_data_cannot_inject_links_or_break_the_page(tmp_path):
    """signoff.json from CI artifacts is read as it comes: a log entry with a URL scheme
    or a path out of the run folder is dropped, a non-numeric duration is ignored."""
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "logs").mkdir()
    (run / "logs" / "build.log").write_text("ok\n")
    doc = signoff.run_data({"id": "r1"}, [{
        "subject": "debian-12", "title": "GMI Debian 12",
        "logs": ["javascript:alert(document.domain)", "/etc/passwd", "../../x", "logs/build.log"],
        "timings": {"provision": 12.5, "update": "<script>", "seal": None}}], [])
    signoff.write_data(run, doc)
    html = signoff.render(signoff.load_data(run / signoff.DATA_FILE), tmp_path / "signoff.html").read_text()
    p = Page(html)
    assert p.links == ["runs/r1/logs/build.log"]
    assert "javascript:" not in html and "<script>" not in html
    assert html.count("class=\"secs\"") == 1 and "12 s</td>" in html  # the one real duration


def test_the_install_iso_used_is_on_the_page(tmp_path):
    """An ISO install's build record names the ISO it used (resolved from the signed
    listing): file, version, SHA-256, URL and how the listing was checked, as text."""
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    iso = {"file": "ubuntu-24.04.5-live-server-amd64.iso", "version": "24.04.5", "sha256": "ab" * 32,
           "url": "https://releases.ubuntu.com/24.04/ubuntu-24.04.5-live-server-amd64.iso",
           "listing": "https://releases.ubuntu.com/24.04/SHA256SUMS",
           "signature": "verified with gpgv: SHA256SUMS.gpg, key 843938DF228D22F7B3742BC0D94AA3F0EFE21092"}
    subjects = [{"subject": "ubuntu-24.04", "install_iso": iso},
                {"subject": "debian-12", "install_iso": "junk"}]
    signoff.write_data(run, signoff.run_data({"id": "r1"}, subjects, []))
    loaded = signoff.load_data(run / signoff.DATA_FILE)
    assert loaded[0].install_iso == iso and loaded[1].install_iso == {}
    html = signoff.render(loaded, tmp_path / "signoff.html").read_text()
    for value in ("ubuntu-24.04.5-live-server-amd64.iso", "(version 24.04.5)", "ab" * 32, iso["url"],
                  "listing signature: verified with gpgv: SHA256SUMS.gpg, key 843938DF"):
        assert value in html
    assert Page(html).links == []  # the upstream URL is shown, not linked
    assert html.count("install ISO") == 1  # debian-12 (debootstrap) has no row


def test_secrets_with_quotes_are_masked_in_the_data(tmp_path):
    from harness.errors import register_secret

    secret = 'a"b\\c\u00e9-Q9'
    register_secret(secret)
    doc = signoff.run_data({"id": "r", "command": f"pytest --hyperv-password={secret}"},
                           [{"subject": "debian-12", "versions": {"x": secret}}],
                           [{"subject": "debian-12", "name": "t", "message": f"failed: {secret}"}])
    assert secret not in json.dumps(doc, ensure_ascii=False)
    assert doc["run"]["command"] == "pytest --hyperv-password=***"
    assert doc["tests"][0]["message"] == "failed: ***"


def test_missing_or_empty_folder_is_an_error(tmp_path):
    with pytest.raises(signoff.SignoffError, match="no such folder"):
        signoff.collect([tmp_path / "nope"])
    with pytest.raises(signoff.SignoffError, match=r"no signoff\.json or junit\.xml"):
        signoff.collect([tmp_path])


def test_command_line_writes_one_page_from_several_runs(tmp_path, capsys):
    out = tmp_path / "merged.html"
    assert signoff.main([str(r) for r in RECORDED] + ["-o", str(out)]) == 0
    assert Page(out.read_text()).columns == ["debian-12", "debian-12"]
    assert str(out) in capsys.readouterr().out


# ------------------------------------------------------ a run writes its own page


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake two-distro run under -n 2 (debian-13 fails one check); its run folder.
    One for the module: its tests only read what it left."""
    folder = tmp_path_factory.mktemp("signoff")
    # an earlier release of debian-12 under --out: the page compares with it
    earlier = folder / "out" / "2026-10" / "GMI-Debian-12.zip"
    earlier.parent.mkdir(parents=True)
    with zipfile.ZipFile(earlier, "w") as zf:
        zf.writestr("gmi-build-record.yml", "distro: debian-12\nbuilt: '2026-10-01T00:00:00Z'\n"
                    "versions: {kernel: 6.1.0-25-amd64}\npackages: [cloud-init 22.4.2]\n")
    ran = matrix_project.once(folder)
    assert ran.outcomes() == {"passed": 12, "failed": 1, "skipped": 1}, ran.output
    return next((ran.out / "runs").glob("2*"))


def test_run_leaves_signoff_data_and_page(matrix_run: Path):
    doc = json.loads((matrix_run / "signoff.json").read_text())
    assert doc["schema"] == signoff.SCHEMA and doc["run"]["id"] == matrix_run.name
    assert doc["run"]["git_revision"] not in ("", "unknown") and doc["run"]["user"]
    assert "hyperv_password = ***  (environment)" in doc["run"]["settings"]
    subjects = {s["subject"]: s for s in doc["subjects"]}
    assert set(subjects) == {"debian-12", "debian-13"}, "a worker's build did not reach the controller"
    for name, s in subjects.items():
        archive = Path(s["archive"])
        assert s["sha256"] == archive.with_name(archive.name + ".sha256").read_text().split()[0]
        assert s["versions"]["kernel"] == "6.1.0-99-amd64" and s["sizes"]["vhdx_bytes"] == 1234567890
        assert f"logs/{name}/clone-seed-user-data" in s["logs"]
        assert set(s["timings"]) == {"provision", "seal"}
    assert len(doc["tests"]) == 14
    # the release diff the plugin attached: debian-12 against the earlier archive under --out
    diff = subjects["debian-12"]["release_diff"]
    assert diff["previous"]["source"].endswith("2026-10/GMI-Debian-12.zip")
    assert diff["packages"]["added"] == [{"name": "linux-image-6.1.0-99-amd64", "version": "6.1.999-1"}]
    assert [v["to"] for v in diff["versions"] if v["key"] == "kernel"] == ["6.1.0-99-amd64"]
    assert subjects["debian-13"]["release_diff"]["none"].startswith("no earlier GMI-Debian-13.zip under ")
    p = Page((matrix_run / "signoff.html").read_text())
    assert sorted(p.columns) == ["debian-12", "debian-13"]
    assert p.verdicts == {"debian-12": "pass", "debian-13": "fail"}
    assert p.cells[("cloud-init ran on first boot", "debian-13")] == "fail"
    assert p.cells[("boots with no errors", "debian-13")] == "pass"  # 1 of 2 skipped
    assert p.cells[("other checks", "debian-12")] == "pass"
    text = " ".join(p.text)
    assert "the YAML turns Secure Boot off" not in text or "skipped" in text
    assert "cloud-init did not run (seen ***)" in text
    assert "GMI-Debian-13.zip" in text and "1.1 GiB" in text and "6.1.0-99-amd64" in text
    assert "(wall time " in text and doc["run"]["wall_seconds"] > 0


def test_no_secret_in_any_report(matrix_run: Path):
    """The build's secret is in a test's failure message and in its settings: masked in
    the sign-off page and data, the pytest-html report, JUnit XML and Allure results."""
    reports = [matrix_run / n for n in ("signoff.html", "signoff.json", "report.html", "junit.xml",
                                        "settings.txt")]
    reports += sorted((matrix_run / "allure-results").iterdir())
    leaks = [p.name for p in reports if matrix_project.SECRET in p.read_text(errors="replace")]
    assert not leaks, f"secret in {leaks}"
    assert "cloud-init did not run (seen ***)" in (matrix_run / "junit.xml").read_text()


def test_pytest_html_report_has_distro_columns_and_log_links(matrix_run: Path):
    """The self-contained pytest-html report: a distro and a checklist column, and the
    distro's logs linked from every test (real HTML, its JSON data parsed back)."""
    import html
    import re

    text = (matrix_run / "report.html").read_text()
    blob = json.loads(html.unescape(re.search(r'data-jsonblob="([^"]*)"', text)[1]))  # type: ignore[index]
    tests = {k.split("::")[-1].split("@")[0]: v[0] for k, v in blob["tests"].items()}
    row = tests["test_dhcp[debian-13]"]
    assert '<td class="col-distro">debian-13</td>' in row["resultsTableRow"]
    assert '<td class="col-checklist">DHCP assigns an IPv4 address on eth0</td>' in row["resultsTableRow"]
    links = {e["name"]: e["content"] for e in row["extras"]}
    assert links["clone.serial.log" if "clone.serial.log" in links else "build.serial.log"].startswith(
        "logs/debian-13/")
    assert all((matrix_run / href).is_file() for href in links.values())
    assert 'href="signoff.html"' in text


def test_signoff_from_merges_runs_without_building(pytester: pytest.Pytester, tmp_path, monkeypatch):
    """Two CI jobs, one distro each: --signoff-from makes one page for both; nothing runs."""
    matrix_project.make(pytester, monkeypatch, tmp_path)
    for distro in ("debian-12", "debian-13"):
        matrix_project.run(pytester, tmp_path / distro, distros=(distro,), workers=0).assert_outcomes(
            passed=7 if distro == "debian-12" else 5, failed=0 if distro == "debian-12" else 1,
            skipped=0 if distro == "debian-12" else 1)
    merged = tmp_path / "merged"
    result = pytester.runpytest_subprocess(f"--signoff-from={tmp_path / 'debian-12'}",
                                           f"--signoff-from={tmp_path / 'debian-13'}", f"--out={merged}")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["sign-off page: */signoff.html"])
    assert "collected" not in result.stdout.str()
    page = next((merged / "runs").glob("signoff-*/signoff.html"))
    p = Page(page.read_text())
    assert sorted(p.columns) == ["debian-12", "debian-13"]
    assert p.verdicts == {"debian-12": "pass", "debian-13": "fail"}
    assert all((page.parent / href).resolve().is_file() for href in p.links) and p.links
    bad = pytester.runpytest_subprocess(f"--signoff-from={tmp_path / 'nothing-here'}")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--signoff-from */nothing-here: no such folder*"])


# ------------------------------------------------------------- in real Chromium


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium is not installed: 'apt-get install -y chromium' "
                "(or 'make setup', which installs it)")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={profile}", "--no-first-run", *args],
        capture_output=True, text=True, timeout=120, check=True)


def test_signoff_page_in_headless_chromium(tmp_path):
    """The page as a person sees it at desktop width: a screenshot (kept under
    reports/screenshots/) and the DOM Chromium built, with the matrix in it."""
    browser = chromium()
    page = signoff.render(signoff.collect(RECORDED), tmp_path / "signoff.html")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "signoff-recorded-runs.png"
    shot.unlink(missing_ok=True)
    headless(browser, tmp_path / "profile", "--window-size=1440,1600", f"--screenshot={shot}",
             page.as_uri())
    assert shot.is_file() and shot.stat().st_size > 30_000, "blank or tiny screenshot"
    assert png_size(shot) == (1440, 1600)
    dom = headless(browser, tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    p = Page(dom)
    assert p.columns == ["debian-12", "debian-12"]
    assert len(p.by_run) == 2 * len(signoff.checklist_rows(signoff.collect(RECORDED)))
    assert "NOT READY" in " ".join(p.text)
    os.utime(shot)  # the artifact stays for a person to look at


def test_ci_example_builds_each_distro_and_merges():
    """The GitHub Actions example: one job per catalogued distro and backend, each
    uploading its results (also on failure), then one merge job for Allure and the page."""
    import yaml

    from harness.backends import BACKENDS
    from harness.distro import known_distros

    flow = yaml.safe_load((ROOT / "examples" / "ci" / "github-actions-matrix.yml").read_text())
    build, merge = flow["jobs"]["build"], flow["jobs"]["merge"]
    matrix = build["strategy"]["matrix"]
    assert set(matrix["distro"]) <= set(known_distros()) and set(matrix["backend"]) == set(BACKENDS)
    assert {tuple(i["runner"]) for i in matrix["include"]} == {
        ("self-hosted", "linux", "kvm"), ("self-hosted", "linux", "hyperv")}
    uploads = [s for s in build["steps"] if "upload-artifact" in s.get("uses", "")]
    assert any(s.get("if") == "always()" and "out/runs/*/" in s["with"]["path"] for s in uploads)
    assert merge["needs"] == ["build", "on-host"] and merge["if"] == "always()"
    runs = " ".join(s.get("run", "") for s in merge["steps"])
    assert "allure generate results/*/*/allure-results" in runs
    assert "gmi-signoff results/*" in runs


def test_ci_example_runs_the_harness_on_the_windows_host_itself():
    """The Windows job: on a self-hosted runner on the Hyper-V host, no make and no
    Linux; the harness installed with pip and run through gmi with --hyperv-local; its
    results uploaded like the Linux jobs' (merged by the same job); the janitor after a
    cancelled or failed run."""
    import yaml

    flow = yaml.safe_load((ROOT / "examples" / "ci" / "github-actions-matrix.yml").read_text())
    job = flow["jobs"]["on-host"]
    assert job["runs-on"] == "${{ matrix.runner }}"
    assert job["strategy"]["matrix"]["runner"] == [["self-hosted", "windows", "hyperv"]]
    assert job["defaults"]["run"]["shell"] == "powershell"
    runs = [s.get("run", "") for s in job["steps"]]
    assert not any("make" in r.split() for r in runs)
    assert any(r"-m pip install ." in r for r in runs)
    build = next(r for r in runs if "--distro=" in r)
    assert build.startswith(r".venv\Scripts\gmi.exe ") and "--backend=hyperv --hyperv-local" in build
    janitor = next(s for s in job["steps"] if "--janitor=remove" in s.get("run", ""))
    assert janitor["if"] == "cancelled() || failure()"
    results = next(s for s in job["steps"] if s.get("with", {}).get("name", "").startswith("results-"))
    assert results["if"] == "always()" and "out/runs/*/" in results["with"]["path"]
    assert results["with"]["name"] == "results-${{ matrix.distro }}-hyperv-local"  # merge: results-*
