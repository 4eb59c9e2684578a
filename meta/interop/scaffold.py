"""``meta init``: a new review folder that ``meta validate`` and ``meta run`` accept at once.

The folder gets the data dictionary (this project's, with ``cancer_site`` optional), a
``studies.csv`` and one outcome sheet with two fictional rows labelled EXAMPLE, one analysis spec,
``review.toml`` with the title, and a README with the two commands. Nothing is overwritten: a
folder that holds a review is refused, and a README already there (a fresh repository's) is kept.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from string import Template

from meta.errors import MetaError
from meta.storage import write_if_changed

TEMPLATE = "templates/review"
FILES = {  # file written -> template it comes from
    "README.md": "README.md",
    "extraction/dictionary.csv": "dictionary.csv",
    "extraction/studies.csv": "studies.csv",
    "extraction/example/example.csv": "example.csv",
    "analyses/example.toml": "example.toml",
}
FILLED = ("README.md", "example.csv")  # templates with $title / $today in them


class ScaffoldError(MetaError):
    """The folder cannot be made into a new review (it already holds one)."""


def init_review(folder: Path, title: str, today: str) -> list[Path]:
    """Write a new review into ``folder`` (created if missing); returns the files written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ScaffoldError(f"{folder} is a file; name a new or empty folder")
    taken = [name for name in ("extraction", "analyses", "review.toml") if (folder / name).exists()]
    if taken:
        raise ScaffoldError(f"{folder} already holds a review ({', '.join(taken)}); name a new or empty folder")
    values = {"title": title, "today": today}
    written = []
    for target, source in FILES.items():
        if (folder / target).exists():
            continue
        text = resources.files("meta.interop").joinpath(f"{TEMPLATE}/{source}").read_text(encoding="utf-8")
        write_if_changed(folder / target, Template(text).substitute(values) if source in FILLED else text)
        written.append(folder / target)
    write_if_changed(folder / "review.toml", review_toml(title))
    return [*written, folder / "review.toml"]


def review_toml(title: str) -> str:
    """The text of a review.toml (TOML basic strings share JSON's escapes)."""
    return ("# The words the site and the living summary show about this review (title, description).\n"
            f"title = {json.dumps(title, ensure_ascii=False)}\n")
