"""The tutorial in docs/tutorial: every page runs; both languages have the same code cells.

Each page is a MyST Markdown notebook; jupytext reads it and nbclient runs it in a
fresh ipykernel, in a temporary folder, failing on the first cell that raises.
"""

import importlib
import os
import re
from pathlib import Path
from types import ModuleType

import pytest

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial"
LANGUAGES = ("en", "zh")
CHAPTERS = sorted(path.name for path in (TUTORIAL / "en").glob("*.md"))


def require(name: str) -> ModuleType:
    """The module, or a skip; under CI=true a missing one fails, since the pages must run."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {name} is not installed: pip install -e '.[docs]'")
        pytest.skip(f"{name} is not installed (pip install -e '.[docs]')")


def code_cells(path: Path) -> list[str]:
    jupytext = require("jupytext")
    notebook = jupytext.read(path)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def test_there_are_five_chapters_in_each_language() -> None:
    assert len(CHAPTERS) >= 5
    assert sorted(path.name for path in (TUTORIAL / "zh").glob("*.md")) == CHAPTERS


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_both_languages_have_the_same_code_cells(chapter: str) -> None:
    english, chinese = (code_cells(TUTORIAL / language / chapter) for language in LANGUAGES)
    assert english, f"{chapter} has no code cells"
    assert chinese == english


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_page_runs(
    chapter: str, language: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jupytext = require("jupytext")
    nbclient = require("nbclient")
    require("ipykernel")
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's warning about its paths
    monkeypatch.setenv("MPLBACKEND", "Agg")  # figures are drawn, not displayed
    notebook = jupytext.read(TUTORIAL / language / chapter)
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_links_between_pages_lead_to_pages(chapter: str, language: str) -> None:
    # mkdocs-jupyter renders the pages itself, so mkdocs --strict does not see these links.
    text = (TUTORIAL / language / chapter).read_text(encoding="utf-8")
    links = re.findall(r"\]\((\.\./[^)#]*)\)", text)
    assert links, f"{language}/{chapter} links to no other page"
    page_folder = TUTORIAL / language / Path(chapter).stem  # the page's URL is a folder
    for link in links:
        target = (page_folder / link).resolve()
        assert target.with_suffix(".md").is_file(), f"{language}/{chapter}: {link} leads nowhere"
