"""The project's Markdown documents link to files and sections that exist: the README, the default
model's history and card, the simulator's versions and the data home's README. Their text moves
between files as the project grows (session 23 moved two thirds of the README into models/HISTORY.md
and detector/synth/CHANGES.md), and a moved section or a link written from another directory breaks
silently otherwise."""

import re
from pathlib import Path

import pytest

from detector.taxonomy import REPO_ROOT

DOCS = ["README.md", "models/HISTORY.md", "models/default/card.md", "detector/synth/CHANGES.md", "datasets/README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#+ (.*)$", re.M)


def anchors(text: str) -> set[str]:
    """GitHub's anchors for a document's headings: lower case, punctuation dropped, spaces as hyphens."""
    out = set()
    for h in HEADING.findall(re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)):
        out.add(re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-"))
    return out


def broken_links(doc: Path) -> list[str]:
    text = doc.read_text()
    bad = []
    for link in LINK.findall(text):
        if re.match(r"[a-z]+:", link):  # http:, https:, mailto:
            continue
        path, _, frag = link.partition("#")
        target = (doc.parent / path).resolve() if path else doc
        if not target.exists():
            bad.append(f"{link}: no such file")
        elif frag and target.suffix == ".md" and frag not in anchors(target.read_text()):
            bad.append(f"{link}: no such section")
    return bad


@pytest.mark.parametrize("name", DOCS)
def test_relative_links_resolve(name):
    doc = REPO_ROOT / name
    assert doc.exists(), name
    assert broken_links(doc) == []


def test_the_check_finds_a_moved_section_and_a_wrong_directory(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.md").write_text("# Other\n\n## A section, moved\n\n```sh\n# not a heading\n```\n")
    doc = tmp_path / "doc.md"
    doc.write_text("# Doc\n\nSee [it](sub/other.md#a-section-moved), [gone](sub/other.md#the-old-section), "
                   "[wrong dir](other.md), [code](sub/other.md#not-a-heading), [here](#doc), [web](https://example.org/x).\n")
    assert broken_links(doc) == ["sub/other.md#the-old-section: no such section", "other.md: no such file",
                                 "sub/other.md#not-a-heading: no such section"]
