"""Bad input across every command: exit status 2, one line on stderr, no traceback, and
nothing that is not a regular file moved or replaced.

Each command runs in this process through ``cli.main``: an exception that escaped it would fail
the test as a traceback would. Every case names a quick kernel and size, so that a check that
does not fire costs a second, and shows up as exit status 0 rather than 2.
"""

import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from gdbench import cli
from tests.plugins import REPO

QUICK = ["--device", "cpu", "--kernels", "numpy-manual", "--sizes", "100", "--budget", "0.01",
         "--windows", "2", "--no-roofline", "--no-memory", "--quiet"]
CONVERGE = ["converge", "--device", "cpu", "--kernels", "numpy-manual", "--max-steps", "5",
            "--lr", "tutorial", "--quiet"]


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A folder holding one of each kind of thing a path can name."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir").mkdir()
    (tmp_path / "plots-with-link").mkdir()
    os.symlink(tmp_path / "victim.txt", tmp_path / "plots-with-link" / "scaling.png")
    (tmp_path / "victim.txt").write_text("someone's file\n")
    os.mkfifo(tmp_path / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    os.symlink(tmp_path / "dir", tmp_path / "link-to-dir")
    os.symlink(tmp_path / "victim.txt", tmp_path / "link-to-file")
    os.symlink("/dev/null", tmp_path / "link-to-device")
    (tmp_path / "r.partial.json").mkdir()  # the partial file of --out r.json is a folder
    (tmp_path / "noise-dir").mkdir()
    (tmp_path / "noise-dir" / "noise.json").mkdir()
    (tmp_path / "text.txt").write_text("not json\n")
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "list.json").write_text("[1, 2]\n")
    (tmp_path / "run.json").write_text(json.dumps({"tool": "gdbench", "schema_version": 1,
                                                   "environment": {}, "settings": {},
                                                   "cases": []}))
    (tmp_path / "noise.json").write_text(json.dumps({"tool": "gdbench-noise", "cases": {}}))
    (tmp_path / "conv.json").write_text(json.dumps({"tool": "gdbench", "kind": "converge"}))
    (tmp_path / "pb.json").write_text(json.dumps({"benchmarks": [], "machine_info": {}}))
    yield tmp_path
    sock.close()


def snapshot(folder):
    """Every entry under ``folder``: its kind, inode and, for a file, its bytes."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            out[path] = (stat.S_IFMT(st.st_mode), st.st_ino,
                         open(path, "rb").read() if stat.S_ISREG(st.st_mode) else None)
    return out


BAD = [
    # paths: only a regular file, or nothing, may be replaced or moved aside
    (["run", *QUICK, "--out", "dir"], "--out dir is a directory, not a regular file"),
    (["run", *QUICK, "--out", "/dev/null"], "is a character device, not a regular file"),
    (["run", *QUICK, "--out", "fifo"], "--out fifo is a FIFO"),
    (["run", *QUICK, "--out", "sock"], "--out sock is a socket"),
    (["run", *QUICK, "--out", "link-to-dir"], "is a symbolic link"),
    (["run", *QUICK, "--out", "link-to-file"], "is a symbolic link"),
    (["run", *QUICK, "--out", "link-to-device"], "is a symbolic link"),
    (["run", *QUICK, "--out", "-"], "--out - : gdbench writes results to files"),
    (["run", *QUICK, "--out", ""], "--out needs a file name, got an empty one"),
    (["run", *QUICK, "--out", "r.json"], "--out r.partial.json is a directory"),
    (["run", *QUICK, "--out", "ok.json", "--csv", "dir"], "--csv dir is a directory"),
    (["run", *QUICK, "--out", "ok.json", "--csv", "fifo"], "--csv fifo is a FIFO"),
    (["run", *QUICK, "--out", "ok.json", "--csv", "-"], "--csv - : gdbench writes"),
    (["run", *QUICK, "--out", "ok.json", "--plot", "victim.txt"], "--plot victim.txt is a"),
    (["run", *QUICK, "--out", "ok.json", "--plot", "fifo"], "--plot fifo is a FIFO"),
    (["run", *QUICK, "--out", "ok.json", "--plot", "-"], "--plot needs a folder name"),
    (["run", *QUICK, "--out", "ok.json", "--csv", "ok.json"], "--out (ok.json) and --csv (ok"),
    (["run", *QUICK, "--out", "/proc/nope/r.json"], "cannot write /proc/nope"),
    ([*CONVERGE, "--sizes", "100", "--out", "dir"], "--out dir is a directory"),
    ([*CONVERGE, "--sizes", "100", "--out", "/dev/null"], "is a character device"),
    ([*CONVERGE, "--sizes", "100", "--out", "c.json", "--plot", "victim.txt"], "--plot victim"),
    (["noise", *QUICK, "--out-dir", "victim.txt"], "--out-dir victim.txt is a"),
    (["noise", *QUICK, "--out-dir", "noise-dir"], "--out-dir noise-dir/noise.json is a dir"),
    (["noise", *QUICK, "--out", "n.json"], "unrecognized arguments: --out"),
    (["report", "run.json", "-o", "run.json"], "-o run.json holds gdbench results"),
    (["report", "run.json", "-o", "noise.json"], "-o noise.json holds gdbench results"),
    (["report", "run.json", "-o", "conv.json"], "-o conv.json holds gdbench results"),
    (["report", "run.json", "-o", "pb.json"], "-o pb.json holds gdbench results"),
    (["report", "run.json", "-o", "dir"], "-o dir is a directory"),
    (["report", "run.json", "-o", "/dev/null"], "-o /dev/null is a character device"),
    (["report", "run.json", "-o", "link-to-file"], "-o link-to-file is a symbolic link"),
    (["report", "run.json", "-o", "-"], "-o - : gdbench writes"),
    (["report", "run.json", "-o", ""], "-o needs a file name"),
    (["plot", "run.json", "-o", "victim.txt"], "-o victim.txt is a"),
    (["plot", "run.json", "-o", "/dev/null"], "-o /dev/null is a character device"),
    (["plot", "run.json", "-o", "link-to-dir"], "-o link-to-dir is a symbolic link"),
    # options that would mean something other than what they say
    (["run", *QUICK, "--processes", "3"], "processes (3) cannot be more than windows (2)"),
    (["run", *QUICK, "--dist-port", "99999", "--nproc", "2"], "port 99999 is outside 1-65535"),
    (["run", *QUICK, "--dist-port=-5", "--nproc", "2"], "port -5 is outside 1-65535"),
    (["run", *QUICK, "--dist-port", "http", "--nproc", "2"], "'http' is not a port number"),
    (["run", *QUICK, "--dtype", "bf17"], "unknown dtype 'bf17'"),
    (["run", *QUICK, "--dtype", ","], "no dtype given"),
    (["run", *QUICK, "--sizes", "1e2:1e1"], "ends below its start"),
    (["run", *QUICK, "--sizes", "abc"], "size 'abc' is not a number"),
    (["run", *QUICK, "--sizes", "inf"], "is not a positive whole number"),
    (["run", *QUICK, "--sizes", "1.5"], "is not a positive whole number"),
    (["run", *QUICK, "--budget", "nan"], "budget must be a positive number"),
    (["run", *QUICK, "--windows", "-1"], "windows must be a whole number"),
    (["run", *QUICK, "--max-windows", "1"], "max_windows must be a whole number no less than "
                                            "windows (2), got 1"),
    (["run", *QUICK, "--processes", "2", "--max-windows", "5"],
     "more windows than --windows need one process"),
    (["run", *QUICK, "--kernels", "nope"], "unknown kernel 'nope'"),
    (["run", *QUICK, "--features", "-2"], "features must be at least 1"),
    (["run", *QUICK, "--nproc", "2", "--processes", "2"], "--processes does not go with"),
    (["run", *QUICK, "--nproc", "2", "--dist-timeout", "0"], "--dist-timeout must be a positive"),
    (["run", *QUICK, "--threads", "-1"], "thread count -1 is not between 1"),
    (["run", *QUICK, "--out-dir", "x"], "unrecognized arguments: --out-dir"),
    # converge: sizes that leave no optimum to converge to
    ([*CONVERGE, "--sizes", "1"], "converge needs more samples than features (N > D)"),
    ([*CONVERGE, "--sizes", "3", "--features", "3"], "N = 3 with D = 3"),
    ([*CONVERGE, "--sizes", "100", "--tol", "2"], "tol must be between 0 and 1"),
    ([*CONVERGE, "--sizes", "100", "--lr", "fast"], "fast"),
    ([*CONVERGE, "--sizes", "100", "--patience", "0"], "patience must be a whole number"),
    ([*CONVERGE, "--sizes", "100", "--max-seconds", "-1"], "max_seconds must be a positive"),
    ([*CONVERGE, "--sizes", "100", "--dtype", "int8"], "unknown dtype 'int8'"),
    # files that are not results
    (["report", "text.txt", "-o", "r.md"], "text.txt: not valid JSON"),
    (["report", "empty.json", "-o", "r.md"], "empty.json"),
    (["report", "list.json", "-o", "r.md"], "list.json: not a gdbench results file"),
    (["report", "dir", "-o", "r.md"], "dir"),
    (["plot", "fifo.json", "-o", "plots"], "fifo.json: no such file"),
    (["plot", "text.txt", "-o", "plots"], "text.txt: not valid JSON"),
    (["plot", "run.json", "conv.json", "-o", "plots"], "go in plots and reports of their own"),
    (["plot", "run.json", "-o", "plots", "--size", "1e2,1e3"], "--size takes one sample count"),
    (["compare", "text.txt", "run.json"], "text.txt: not valid JSON"),
    (["compare", "list.json", "run.json"], "neither gdbench results nor pytest-benchmark JSON"),
    (["compare", "run.json", "run.json", "--threshold", "x"], "threshold 'x' is not a number"),
    (["compare", "run.json", "run.json", "--threshold=-5%"], "must be between 0% and 1000%"),
    (["compare", "run.json", "run.json", "--noise", "text.txt"], "text.txt"),
    (["compare", "run.json", "pb.json"], "have no case in common"),
    (["noise", *QUICK, "--runs", "0"], "--runs must be at least 2"),
    (["noise", *QUICK, "--threshold", "lots"], "threshold 'lots' is not a number"),
    (["train", "--kernel", "numpy-manual", "--dtype", "fp8"], "does not support dtype 'fp8'"),
    (["train", "--kernel", "numpy-manual", "--iters", "-"], "invalid int value"),
    (["probe", "--device", "gpu0"], "unknown device 'gpu0'"),
    (["probe", "--device", "cpu", "--bytes", "2TB!"], "--bytes takes a size such as"),
    (["probe", "--device", "cpu", "--bytes", "100"], "--bytes must be at least 4 KiB"),
    (["list", "--all"], "unrecognized arguments: --all"),
]


# What a gate must never take for a pass, and outputs that would destroy each other: refused
# before any worker starts or anything is measured (issue 36).
AB = ["ab", "numpy-manual", "--device", "cpu", "--sizes", "1e3", "--window", "0.01",
      "--rounds-per-block", "1", "--min-blocks", "3", "--max-blocks", "3", "--quiet"]
GATE = [
    ([*AB, "--out", "same.json", "--markdown", "same.json"],
     "--out (same.json) and --markdown (same.json) are the same file"),
    ([*AB, "--out", "s.json", "--markdown", "s.partial.json"], "--out's partial file"),
    (["run", *QUICK, "--out", "q.json", "--plot", "q.json"],
     "--out (q.json) and --plot (q.json) are the same file"),
    (["run", *QUICK, "--out", "q.json", "--csv", "q.partial.json"], "--out's partial file"),
    ([*CONVERGE, "--sizes", "100", "--out", "c.json", "--plot", "c.json"],
     "--out (c.json) and --plot (c.json) are the same file"),
    (["report", "run.json", "-o", "r.md", "--html", "r.md"], "-o (r.md) and --html (r.md)"),
    (["report", "run.json", "-o", "r.md", "--html", "r-plots"], "-o's plots (r-plots)"),
    ([*AB, "--threshold", "5"], "threshold '5' has no unit: write 5% for a percentage"),
    (["compare", "run.json", "run.json", "--threshold", "5"], "threshold '5' has no unit"),
    (["noise", *QUICK, "--threshold", "10"], "threshold '10' has no unit"),
    (["ab", "numpy-manual", "--device", "cpu", "--dtype", "bfloat16", "--quiet"],
     "kernel numpy-manual does not support dtype 'bfloat16'"),
    ([*AB, "--features", "0"], "features must be at least 1, got 0"),
    (["ab", "cupy-fused", "numpy-manual", "--device", "cpu", "--quiet"],
     "kernel cupy-fused does not run on 'cpu'"),
    ([*AB, "--window", "1e9", "--max-time", "3"], "does not fit in --max-time (3 s)"),
    (["compare", "run.json", "/dev/zero"], "/dev/zero is a character device, not a results"),
    (["compare", "/dev/null", "run.json"], "/dev/null is a character device"),
    (["report", "/dev/zero", "-o", "r.md"], "/dev/zero is a character device"),
    (["report", "dir", "--html", "r.html"], "dir is a directory"),
    (["compare", "run.json", "run.json", "--noise", "/dev/zero"], "/dev/zero is a character"),
    (["report", "ab99.json", "-o", "r.md"], "ab schema version 99 is newer than this gdbench's"),
    (["report", "ab99.json", "--html", "r.html"], "ab schema version 99 is newer"),
    (["compare", "run.json", "run.json", "--noise", "noise99.json"],
     "noise schema version 99 is newer"),
    (["train", "--lr", "nan"], "the learning rate must be a finite number, got nan"),
]


@pytest.mark.parametrize("args,message", GATE, ids=[" ".join(a)[:70] for a, _ in GATE])
def test_outputs_sharing_a_path_and_inputs_that_cannot_work_are_refused_first(place, capsys,
                                                                             args, message):
    (place / "ab99.json").write_text(json.dumps({"tool": "gdbench-ab", "schema_version": 99,
                                                 "cases": []}))
    (place / "noise99.json").write_text(json.dumps({"tool": "gdbench-noise", "cases": {},
                                                    "default": 0.01, "schema_version": 99}))
    test_bad_input_is_one_line_and_exit_2_and_leaves_everything_as_it_was(place, capsys, args,
                                                                          message)


@pytest.mark.skipif(__import__("tests.conftest").conftest.cuda_present(), reason="a GPU is here")
def test_ab_on_cuda_without_a_gpu_is_refused_before_any_worker(place, capsys):
    test_bad_input_is_one_line_and_exit_2_and_leaves_everything_as_it_was(
        place, capsys, ["ab", "torch-manual", "--device", "cuda", "--quiet"],
        "kernel torch-manual is unavailable on cuda")


@pytest.mark.parametrize("command", [["compare", "run.json", "fifo"],
                                     ["report", "fifo", "-o", "r.md"],
                                     ["report", "fifo", "--html", "r.html"]])
def test_a_fifo_given_as_input_is_one_line_and_never_waited_on(place, command):
    """In a process of its own, with a time limit: a reader that opened the FIFO would wait
    for a writer for ever."""
    (place / "run.json").write_text(json.dumps({"tool": "gdbench", "schema_version": 3,
                                                "environment": {}, "settings": {},
                                                "cases": []}))
    done = subprocess.run([sys.executable, "-m", "gdbench", *command], capture_output=True,
                          text=True, timeout=60, cwd=place,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 2, done.stderr
    assert "fifo is a FIFO, not a results file" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_there_are_at_least_sixty_bad_inputs():
    assert len(BAD) >= 60


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a)[:70] for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2_and_leaves_everything_as_it_was(place, capsys, args,
                                                                         message):
    before = snapshot(place)
    try:
        status = cli.main(args)
    except SystemExit as exit_:  # argparse
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    after = snapshot(place)
    assert {p: v for p, v in after.items() if p in before} == before  # nothing moved or changed
    assert set(after) == set(before), set(after) ^ set(before)  # and nothing written
