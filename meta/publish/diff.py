"""``meta diff``: what changed in the pooled results since a git revision or the last version."""

from __future__ import annotations

import subprocess
from pathlib import Path

from meta.errors import MetaError
from meta.publish.living import describe_change, latest, read_history

HISTORY = "analyses/history.csv"


def history_at(root: Path, revision: str) -> str:
    """The text of history.csv at a git revision ('' if the file did not exist there)."""
    try:
        done = subprocess.run(["git", "-C", str(root), "show", f"{revision}:{HISTORY}"],
                              capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise MetaError("git is not installed; meta diff REV needs it") from None
    if done.returncode != 0:
        if "exists on disk, but not in" in done.stderr or "does not exist in" in done.stderr:
            return ""
        raise MetaError(f"git cannot show {HISTORY} at {revision!r}: {done.stderr.strip()}")
    return done.stdout


def diff_lines(root: Path, revision: str | None = None) -> list[str]:
    """One line per analysis whose published result differs (vs ``revision``, or vs its previous version)."""
    root = Path(root)
    path = root / HISTORY
    versions = read_history(path.read_text() if path.exists() else "")
    now = latest(versions)
    lines = []
    if revision is None:
        for name, version in now.items():
            mine = [v for v in versions if v.analysis == name]
            if len(mine) > 1:
                lines.append(f"{version.version_date} " + describe_change(mine[-2], version, name))
            else:
                lines.append(f"{version.version_date} " + describe_change(None, version, name))
        return lines
    then = latest(read_history(history_at(root, revision)))
    for name, version in now.items():
        if name not in then:
            lines.append(describe_change(None, version, name))
        elif not version.same_result(then[name]):
            lines.append(describe_change(then[name], version, name))
    lines += [f"{name}: removed" for name in then if name not in now]
    return lines
