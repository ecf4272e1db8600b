"""The HTML report: one self-contained page, checked as a file and in a headless Chromium."""

import fcntl
import json
import os
import re
import shutil
import subprocess

import pytest

from gdbench.files.results import read_json
from tests.plugins import REPO

pytest.importorskip("matplotlib", reason="the plot extra is not installed")
pytest.importorskip("markdown", reason="the plot extra is not installed")

RUN = REPO / "results" / "cpu-default-epyc-1.json"
AB = REPO / "results" / "ab-cpu-2core-epyc" / "compile-vs-numba-1.json"
CONVERGE = REPO / "results" / "converge-cpu-2core-epyc-1.json"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The page of the committed default run, with an ab session and a converge run: made
    once a session, by whichever pytest-xdist worker asks first (the folder above a worker's
    own is the session's)."""
    from gdbench import cli

    shared = os.environ.get("PYTEST_XDIST_WORKER") is not None
    folder = tmp_path_factory.getbasetemp().parent if shared else tmp_path_factory.mktemp("html")
    out = folder / "gdbench-report.html"
    with open(folder / "gdbench-report.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.exists():
            assert cli.main(["report", str(RUN), str(AB), str(CONVERGE), "--html", str(out)]) == 0
    return out


def test_one_self_contained_page_with_a_row_per_case(page):
    text = page.read_text()
    cases = read_json(RUN).cases
    assert text.count("<tr data-kernel=") == len(cases)
    # nothing fetched: no address outside the page (the SVGs' own namespaces aside)
    fetched = re.findall(r'(?:src|href)="(?!#)([^"]+)"', text)
    assert [u for u in fetched if not u.startswith("data:")] == []
    assert page.stat().st_size < 5 << 20
    assert 'id="series-0"' in text and "<svg" in text  # the plots are inline SVG
    for heading in ("Plots", "Findings", "converge"):
        assert f"<h2>{heading}</h2>" in text
    assert "source: commit" in text  # the provenance of the run
    assert "torch-compile against numba-fused" in text or "torch-compile" in text


def test_html_and_markdown_targets_are_checked(tmp_path, gdbench_cli):
    from tests.synthetic import write_run

    run = tmp_path / "run.json"
    write_run(run, "cpu", {("numpy-manual", 100): 1e-5, ("numpy-manual", 10_000): 3e-5})
    result = gdbench_cli("report", run)
    assert result.returncode == 2 and "give -o FILE.md, --html FILE.html, or both" in result.stderr
    kept = tmp_path / "kept.json"
    kept.write_text(run.read_text())
    refused = gdbench_cli("report", run, "--html", kept)
    assert refused.returncode == 2 and "holds gdbench results" in refused.stderr
    both = gdbench_cli("report", run, "-o", tmp_path / "r.md", "--html", tmp_path / "r.html",
                       "--no-plots")
    assert both.returncode == 0, both.stderr
    assert (tmp_path / "r.md").exists() and (tmp_path / "r.html").exists()


def browser():
    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(b)), None)


def headless(*args, timeout=120):
    return subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu",
                           "--enable-logging=stderr", "--v=0", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(browser() is None, reason="no Chromium here (Debian: apt-get install "
                                              "chromium; .ci/run installs it)")
def test_the_page_in_a_real_browser(page, tmp_path):
    done = headless("--virtual-time-budget=5000", "--dump-dom", f"{page.as_uri()}#selftest")
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="selftest">([^<]*)</pre>', done.stdout)
    assert found, done.stdout[-2000:]
    report = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert report["errors"] == []
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console  # no message at all in the browser's console
    assert report["tables"] == [len(read_json(RUN).cases)]  # one row per case
    drawn = {p["name"]: p for p in report["plots"]}
    assert {"scaling", "bandwidth", "phases", "probe"} <= set(drawn)
    assert all(p["drawn"] for p in report["plots"])
    assert drawn["scaling"]["series"] == drawn["bandwidth"]["series"] > 0
    assert drawn["phases"]["hoverable"] > 0 and drawn["probe"]["hoverable"] > 0
    assert report["sorted"] is True and report["toggled"] is True
    shot = tmp_path / "report.png"  # for a person to look at: pytest keeps the last runs' tmp
    headless("--hide-scrollbars", "--window-size=1280,1600", f"--screenshot={shot}", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_two_runs_of_one_device_are_compared_on_the_page(tmp_path):
    from gdbench.analysis.html import html_report
    from tests.synthetic import synthetic_run

    base = synthetic_run("cpu", {("numpy-manual", 100): 1e-5, ("numba-fused", 100): 2e-6})
    new = synthetic_run("cpu", {("numpy-manual", 100): 1e-5, ("numba-fused", 100): 3e-6}, seed=1)
    text = html_report([base, new], ["base.json", "new.json"])
    assert "<h2>compare: new.json against base.json</h2>" in text
    assert text.count("<tr data-kernel=") == 4
    def verdict(case):
        row = re.search(rf"<tr>\s*<td>step {case}</td>(.*?)</tr>", text, re.S)
        return re.findall(r"<td>([A-Z]+)</td>", row.group(1))

    assert verdict("numba-fused-cpu-float32-N1e2") == ["SLOWER"]
    assert verdict("numpy-manual-cpu-float32-N1e2") == ["SAME"]
