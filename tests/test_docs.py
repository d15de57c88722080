"""The repository's own documents: section citations resolve, and nothing points outside the repo.

Docstrings and the README cite the design document as "docs/design.md section N"; a citation of a
missing file or of a section number the file has no heading for sends a reader nowhere.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {".git", "runs", "models", "out", "build", "dist", ".venv", "__pycache__",
                ".pytest_cache"}
CITATION = re.compile(r"(docs/[\w./-]+\.md),?\s+sections?\s+(\d+(?:\s*(?:,|and|&)\s*\d+)*)")
HEADING_NUMBER = re.compile(r"^#{1,6}\s+(\d+)\.?\s", re.MULTILINE)
OUTSIDE_DOC = "DESIGN" + ".md"  # spelt apart so that this file does not mention it
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|root|home)(?=/|\b)")


def repo_files(suffixes: tuple[str, ...] | None = None) -> list[Path]:
    """Every file of the working tree outside build outputs, optionally only these suffixes."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        found += [Path(folder) / name for name in files
                  if suffixes is None or Path(name).suffix in suffixes]
    return found


def read_text(path: Path) -> str | None:
    data = path.read_bytes()
    return None if b"\0" in data else data.decode("utf-8", errors="replace")


def citations(text: str) -> list[tuple[str, int]]:
    """(document, section number) for every "docs/X.md section N" (or "sections N and M")."""
    return [(doc, int(number)) for doc, numbers in CITATION.findall(text)
            for number in re.findall(r"\d+", numbers)]


def heading_numbers(text: str) -> set[int]:
    """Numbers of headings like "## 3. Evaluation" (not "### 3.1 ...")."""
    return {int(n) for n in HEADING_NUMBER.findall(text)}


def test_citation_parser_reads_single_and_joined_sections():
    assert citations("see docs/design.md section 5.") == [("docs/design.md", 5)]
    assert citations("(docs/design.md sections 2 and 3)") == [("docs/design.md", 2), ("docs/design.md", 3)]
    assert heading_numbers("## 3. Evaluation\n### 3.1 Bins\n## 4 Tasks\n") == {3, 4}


def test_every_docs_section_citation_points_at_a_numbered_heading():
    cited = [(path, doc, number) for path in repo_files((".py", ".md"))
             for doc, number in citations(read_text(path) or "")]
    assert len(cited) >= 5, "expected the code and README to cite docs/design.md sections"
    broken = []
    for path, doc, number in cited:
        target = ROOT / doc
        if not target.is_file():
            broken.append(f"{path.relative_to(ROOT)}: {doc} does not exist")
        elif number not in heading_numbers(target.read_text(encoding="utf-8")):
            broken.append(f"{path.relative_to(ROOT)}: {doc} has no heading numbered {number}")
    assert not broken, "\n".join(broken)


def test_no_file_mentions_the_outside_design_notes():
    mentions = [str(path.relative_to(ROOT)) for path in repo_files()
                if path.name != Path(__file__).name and OUTSIDE_DOC in (read_text(path) or "")]
    assert not mentions, f"these files mention {OUTSIDE_DOC}, which is not in the repository: {mentions}"


def test_readme_names_no_absolute_path_of_a_machine():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = [line for line in text.splitlines() if MACHINE_PATH.search(line)]
    assert not found, "README names paths of one machine:\n" + "\n".join(found)
