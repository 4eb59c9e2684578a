"""Every command and code block of README.md and docs/*.md runs, in order, in a copy of the project,
and does what the text says: it exits 0 (``sh``), its asserts hold (``python``), and where the text
is marked ``<!-- docs-test: expect "..." -->`` its output says so. A block marked
``<!-- docs-test: needs R -->`` runs where ``Rscript`` is installed; ``<!-- docs-test: skip (why) -->``
says why it is not run here (only the set-up commands, which CI runs itself)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- docs-test: (?P<marker>[^>]*?) -->\n)?^```(?P<lang>sh|python)\n(?P<body>.*?)^```",
                   re.S | re.M)
COPIED = ("meta", "extraction", "analyses", "reference", "docs", "site", "review.toml", "pyproject.toml", "README.md")


@dataclass(frozen=True)
class Block:
    document: str
    line: int
    lang: str
    body: str
    marker: str


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [Block(path.name, text.count("\n", 0, m.start("body")) + 1, m["lang"], m["body"], m["marker"] or "")
            for m in BLOCK.finditer(text)]


def project_copy(tmp: Path) -> Path:
    """The project as a reader has it: its files, the installed venv, and a git history of two commits."""
    work = tmp / "project"
    work.mkdir()
    for name in COPIED:
        source = ROOT / name
        (shutil.copytree(source, work / name, ignore=shutil.ignore_patterns("__pycache__", "_staging"))
         if source.is_dir() else shutil.copy2(source, work / name))
    (work / ".venv").symlink_to(ROOT / ".venv")
    git = ["git", "-c", "user.name=docs", "-c", "user.email=docs@example.org", "-C", str(work)]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "first"], check=True)
    subprocess.run(git + ["commit", "-qm", "second", "--allow-empty"], check=True)
    return work


def run_block(block: Block, work: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MPLBACKEND": "Agg"}
    command = (["bash", "-e", "-o", "pipefail", "-c", block.body] if block.lang == "sh"
               else [sys.executable, "-c", block.body])
    return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_example_of_the_document_runs(document, tmp_path):
    found = blocks(document)
    work = project_copy(tmp_path)
    for block in found:
        where = f"{block.document}, block at line {block.line}"
        if block.marker.startswith("skip"):
            assert "(" in block.marker, f"{where}: a skipped block must say why"
            continue
        if block.marker == "needs R" and not shutil.which("Rscript"):
            continue
        done = run_block(block, work)
        assert done.returncode == 0, f"{where} failed ({done.returncode}):\n{block.body}\n{done.stdout}\n{done.stderr}"
        for expected in re.findall(r'expect "([^"]+)"', block.marker):
            assert expected in done.stdout + done.stderr, f"{where}: output does not say {expected!r}"


def test_the_documents_have_examples_and_every_block_is_found():
    counts = {p.name: len(blocks(p)) for p in DOCUMENTS}
    assert counts["README.md"] >= 3 and counts["USER_GUIDE.md"] >= 15, counts
    for path in DOCUMENTS:  # a fence the pattern misses (e.g. ```bash) would silently go untested
        fences = re.findall(r"^```(\w+)", path.read_text(encoding="utf-8"), re.M)
        assert set(fences) <= {"sh", "python", "toml", "text"}, f"{path.name}: fence languages {set(fences)}"


def test_the_worked_example_script_runs(tmp_path):
    work = project_copy(tmp_path)
    done = subprocess.run([sys.executable, "docs/examples/quickstart.py"], cwd=work, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (work / "docs" / "examples" / "bcg-forest.png").read_bytes()[:4] == b"\x89PNG"
