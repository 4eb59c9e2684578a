"""Nothing lost: `meta add` and `meta run` killed at any point, run at the same time, or stopped
between two writes leave every sheet and output whole, and a re-run finishes the job.

The kill test (``slow``, ``make crash``) starts ``meta add`` and ``meta run`` as subprocesses on a
copy of the project and SIGKILLs them at seeded random times; after every kill each file must be
byte for byte its version before or after the command (no partial file, no temporary file read as
a sheet), ``meta validate`` must pass, and running the command again must give exactly the state of
an uninterrupted run. The other tests are quick and in the default run.
"""

import contextlib
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import meta.publish.run as run_module
from meta.cli.main import main
from meta.sheets.evidence import sheet_paths
from meta.storage import write_if_changed

from .test_run import NEW_ROW, SURVIVAL, copy_project

META = [sys.executable, "-m", "meta.cli.main"]
PACKAGE = Path(run_module.__file__).parent
KILLS = int(os.environ.get("META_KILLS", "120"))
SEED = int(os.environ.get("META_KILL_SEED", "7"))
DATE_0, DATE_1 = "2026-01-01", "2026-02-01"


def snapshot(root: Path) -> tuple[dict[str, bytes], list[str]]:
    """Every file of the project (locks left out) and, apart, the temporary files of unfinished writes."""
    files, temporary = {}, []
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if not path.is_file() or path.name.endswith(".lock"):
            continue
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            temporary.append(name)
        else:
            files[name] = path.read_bytes()
    return files, temporary


def restore(root: Path, state: dict[str, bytes]) -> None:
    """Put ``root`` back to ``state`` (files only), removing whatever else is there."""
    now, temporary = snapshot(root)
    for name in list(now) + temporary:
        if name not in state:
            (root / name).unlink()
    for name, content in state.items():
        if now.get(name) != content:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(content)


def add_args(root: Path, values: dict, *extra: str) -> list[str]:
    args = ["add", str(root / SURVIVAL), "--root", str(root), *extra]
    for column, value in values.items():
        args += ["--set", f"{column}={value}"]
    return args


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def stamps(root: Path) -> dict[Path, int]:
    """The modification time of every file under ``root`` (read while a process writes there)."""
    out = {}
    for path in root.rglob("*"):
        with contextlib.suppress(FileNotFoundError):  # a temporary file renamed meanwhile
            out[path] = path.stat().st_mtime_ns
    return out


def kill_at(args: list[str], delay: float, watch: Path | None = None) -> bool:
    """Run ``meta args`` and SIGKILL it (and its workers) ``delay`` s after its start, or after its first
    write under ``watch`` if given; False if it ended first."""
    before = stamps(watch) if watch else None
    process = subprocess.Popen(META + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    while watch and process.poll() is None and stamps(watch) == before:
        time.sleep(0.005)
    try:
        process.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True


def timed(args: list[str], root: Path) -> tuple[float, float, float]:
    """Run ``meta args`` to its end: (duration, first write, last write), in seconds from its start."""
    seen = stamps(root)
    started = time.perf_counter()
    process = subprocess.Popen(META + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    writes = []
    while process.poll() is None:
        now = stamps(root)
        if now != seen:
            writes.append(time.perf_counter() - started)
            seen = now
        time.sleep(0.01)
    duration = time.perf_counter() - started
    assert process.returncode == 0
    return duration, min(writes, default=duration), max(writes, default=duration)


def assert_old_or_new(root: Path, old: dict[str, bytes], new: dict[str, bytes]) -> list[str]:
    """Every file is byte for byte its old or its new version; returns the temporary files left."""
    now, temporary = snapshot(root)
    for name in old.keys() | new.keys() | now.keys():
        if name in now:
            assert now[name] in (old.get(name), new.get(name)), f"{name} is neither the old nor the new version"
        else:
            assert name not in old or name not in new, f"{name} is missing"
    sheets = {str(p.relative_to(root)) for p in sheet_paths(root)}
    assert not sheets & set(temporary), "a temporary file is read as a sheet"
    return temporary


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A copy of the project after a first run (the state every test starts from)."""
    root = copy_project(tmp_path_factory.mktemp("published"))
    assert invoke("run", "--root", str(root), "--date", DATE_0).exit_code == 0
    return root


@pytest.fixture
def project(published, tmp_path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(published, root)
    return root


def other_row(number: int) -> dict:
    estimate = f"0.{60 + number}"
    return {**NEW_ROW, "study": f"Concurrent {number} 2025", "cohort": f"Concurrent Cohort {number}",
            "estimate": estimate, "quote": f"HR {estimate} (95% CI 0.50 to 0.98)"}


def test_concurrent_adds_all_land(project):
    sheet = project / SURVIVAL
    original = sheet.read_bytes()
    processes = [subprocess.Popen(META + add_args(project, other_row(i)), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for i in range(4)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, outputs
    text = sheet.read_bytes()
    assert text.startswith(original)
    assert text.count(b"\n") == original.count(b"\n") + 4
    for i in range(4):
        assert text.count(f"Concurrent {i} 2025".encode()) == 1
    numbers = sorted(int(out.split("Added row ")[1].split()[0]) for out, _ in outputs)
    assert numbers == list(range(numbers[0], numbers[0] + 4)), "every add reports the row it wrote"
    assert invoke("validate", "--root", str(project)).exit_code == 0


@pytest.mark.slow
def test_concurrent_add_and_run_keep_every_version(project):
    """Two `meta add --run` at once: both rows land and history.csv and CHANGES.md keep both versions."""
    processes = [subprocess.Popen(META + add_args(project, other_row(i), "--run", "--date", DATE_1),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    published = sum(int(out.split(" new version(s) published")[0].split()[-1]) for out, _ in outputs)
    history = (project / "analyses/history.csv").read_text().splitlines()
    changes = (project / "analyses/CHANGES.md").read_text().split(f"## {DATE_1}\n\n")[1].split("\n## ")[0]
    assert published >= 1
    assert sum(line.startswith(DATE_1) for line in history) == published, "a published version was lost"
    assert changes.count("\n- ") + changes.startswith("- ") == published, "a line of CHANGES.md was lost"
    for i in range(2):
        assert f"Concurrent {i} 2025" in history[-1] and f"Concurrent {i} 2025" in changes
    final = invoke("run", "--root", str(project), "--date", DATE_1)
    assert "0 new version(s)" in final.output, "a run after both found something left to publish"


def test_a_crash_between_changes_and_history_loses_no_line(project, monkeypatch):
    """Stopped after CHANGES.md and before history.csv, the next run publishes the version once."""
    assert invoke(*add_args(project, NEW_ROW)).exit_code == 0
    real = run_module.write_if_changed

    def crash_at_history(path, content):
        if Path(path).name == "history.csv":
            raise KeyboardInterrupt("killed")
        return real(path, content)

    monkeypatch.setattr(run_module, "write_if_changed", crash_at_history)
    with pytest.raises(KeyboardInterrupt):
        run_module.run(project, DATE_1)
    monkeypatch.setattr(run_module, "write_if_changed", real)
    assert invoke("run", "--root", str(project), "--date", DATE_1).exit_code == 0
    changes = (project / "analyses/CHANGES.md").read_text()
    assert changes.count("+1 study (Example 2025 Cohort)") == 1
    history = (project / "analyses/history.csv").read_text()
    assert sum(DATE_1 in line for line in history.splitlines()) == 1


def test_writes_keep_permissions_and_leave_no_temporary_file(tmp_path, monkeypatch):
    shared = tmp_path / "shared.csv"
    shared.write_text("old\n")
    shared.chmod(0o664)
    assert write_if_changed(shared, "new\n")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o664
    umask = os.umask(0o022)
    try:
        write_if_changed(tmp_path / "fresh.csv", "x\n")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "fresh.csv").stat().st_mode) == 0o644

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_if_changed(shared, "newer\n")
    assert shared.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.csv", "shared.csv"]


@pytest.mark.slow
def test_random_kills_leave_old_or_new_files_and_a_rerun_finishes(published, tmp_path, capsys):
    rng = random.Random(SEED)
    code = stamps(PACKAGE)
    started = time.perf_counter()
    # the states: before the add (old), after it (middle), after the run that follows (new)
    reference = tmp_path / "reference"
    shutil.copytree(published, reference)
    old, _ = snapshot(reference)
    add_times = timed(add_args(reference, NEW_ROW), reference)
    middle, _ = snapshot(reference)
    run_times = timed(["run", "--root", str(reference), "--date", DATE_1], reference)
    new, _ = snapshot(reference)
    assert middle != old and new != middle

    root = tmp_path / "victim"
    shutil.copytree(published, root)
    commands = {
        "add": (old, middle, add_args(root, NEW_ROW), add_times),
        "run": (middle, new, ["run", "--root", str(root), "--date", DATE_1], run_times),
    }
    kills = {"add": 0, "run": 0}
    outcomes = {(name, state): 0 for name in kills for state in ("old", "new", "mixed")}
    leftovers = 0
    attempts = 0
    while sum(kills.values()) < KILLS and attempts < 3 * KILLS:
        attempts += 1
        name = "add" if kills["add"] * 2 < KILLS else "run"
        before, after, args, (seconds, first_write, last_write) = commands[name]
        restore(root, before)
        # half the kills anywhere in the run, half once it has started writing (where a crash can harm)
        anywhere = rng.random() < 0.5
        delay = rng.uniform(0.0, 1.1 * seconds) if anywhere else rng.uniform(0.0, last_write - first_write + 0.05)
        if not kill_at(args, delay, watch=None if anywhere else root):
            continue
        kills[name] += 1
        leftovers += len(assert_old_or_new(root, before, after))
        now, _ = snapshot(root)
        outcomes[name, "old" if now == before else "new" if now == after else "mixed"] += 1
        assert invoke("validate", "--root", str(root)).exit_code == 0, f"validate fails after kill {attempts}"
        # running the command again finishes the job: exactly the uninterrupted result
        again = invoke(*args)
        assert again.exit_code == 0 or (name == "add" and "repeats row" in again.stderr), again.output
        assert snapshot(root)[0] == after, (f"re-running {name} after kill {attempts} does not give the new state"
                                            + (" (meta/ was edited during the test; run it again)"
                                               if stamps(PACKAGE) != code else ""))
    seconds = time.perf_counter() - started
    with capsys.disabled():
        for name in kills:
            print(f"\nkilled meta {name} {kills[name]} times: {outcomes[name, 'old']} left every file old, "
                  f"{outcomes[name, 'new']} every file new, {outcomes[name, 'mixed']} a mix of whole old and new files")
        print(f"{sum(kills.values())} kills in {seconds:.0f} s; {leftovers} temporary file(s) left, none read as "
              "a sheet; validate passed and a re-run gave the uninterrupted result after every kill")
    assert sum(kills.values()) >= KILLS


def test_runs_take_turns(project):
    """A `meta run` waits while another holds the project's run lock, then finishes."""
    from meta.storage import locked

    with locked(project / "analyses" / "history.csv"):
        process = subprocess.Popen(META + ["run", "--root", str(project), "--date", DATE_0],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=5)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "0 re-computed" in out
