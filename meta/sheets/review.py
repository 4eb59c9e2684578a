"""``review.toml``: the optional file at the project root that names the review.

It holds the words the published outputs show about the review as a whole: ``title`` (the site's
title and the heading of the living summary) and ``description`` (one or two sentences under the
title: which models, which side of the null favours what). Both are optional; without the file a
neutral title is used, so the engine carries nothing of any one review.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomllib

from meta.errors import SpecError

REVIEW_FILE = "review.toml"
REVIEW_KEYS = ("title", "description")
DEFAULT_TITLE = "A living evidence synthesis"
DEFAULT_DESCRIPTION = ("Each analysis states its model and the groups its forest plot favours; "
                       "every study number is traceable to a quoted source.")


@dataclass(frozen=True)
class ReviewDescription:
    """What the site and the living summary say about the review as a whole."""

    title: str = DEFAULT_TITLE
    description: str = DEFAULT_DESCRIPTION


def load_review(root: Path) -> ReviewDescription:
    """The review's ``review.toml`` (defaults when absent); SpecError on a bad file."""
    path = Path(root) / REVIEW_FILE
    if not path.exists():
        return ReviewDescription()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SpecError(f"{REVIEW_FILE}: not valid TOML ({err})") from None
    unknown = sorted(set(data) - set(REVIEW_KEYS))
    if unknown:
        raise SpecError(f"{REVIEW_FILE}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(REVIEW_KEYS)}")
    for key, value in data.items():
        if not isinstance(value, str) or not value.strip():
            raise SpecError(f"{REVIEW_FILE}: {key} must be a non-empty text")
    return ReviewDescription(**{key: value.strip() for key, value in data.items()})
