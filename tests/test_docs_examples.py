"""Every python block of the guides runs: docs/writing-agents.md, docs/writing-routers.md and
docs/embedding.md.

A page's blocks run in order in one namespace, as one script (a block may use what an
earlier one defined), in a scratch working directory, so that a run without ``store=`` writes
to a ``.orch/`` there. A traceback names the page and its line. A block preceded by
``<!-- docs-test: skip -->`` is a fragment and is not run (at most a quarter of a page's
blocks may be); one preceded by ``<!-- docs-test: pytest -->`` is a test file, run by an
in-process pytest with the installed plugins (orch's and agents' fixtures), and every test
in it must pass.

The blocks of docs/plugins.md name packages that do not exist (``my_pkg``): they are only
parsed. Every relative link of these pages and of docs/index.md must name a file that exists.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOCS = Path(__file__).parents[1] / "docs"
PAGES = ["writing-agents.md", "writing-routers.md", "embedding.md"]
_BLOCK = re.compile(
    r"^(?:<!-- docs-test: (?P<mark>[a-z]+) -->\n)?```python\n(?P<code>.*?)^```$", re.M | re.S
)
_MARKS = {None, "skip", "pytest"}


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    """Line of the page where the code starts (after the fence)."""
    mark: str | None
    code: str


def blocks(page: str) -> list[Block]:
    text = (DOCS / page).read_text(encoding="utf-8")
    found = []
    for m in _BLOCK.finditer(text):
        line = text.count("\n", 0, m.start("code")) + 1
        if m["mark"] not in _MARKS:
            raise AssertionError(f"{page}:{line}: unknown docs-test mark {m['mark']!r}")
        found.append(Block(page, line, m["mark"], m["code"]))
    return found


def test_every_python_block_is_found() -> None:
    # A broken pattern must not make the tests below pass on no blocks at all.
    for page in PAGES:
        text = (DOCS / page).read_text(encoding="utf-8")
        found = blocks(page)
        assert len(found) == text.count("```python\n"), page
        assert len(found) >= 4, page
        assert sum(b.mark == "skip" for b in found) * 4 <= len(found), f"{page}: too many skips"


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_as_a_script(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    monkeypatch.delenv("ORCH_MODELS", raising=False)
    namespace: dict[str, object] = {"__name__": "docs_" + Path(page).stem.replace("-", "_")}
    ran = 0
    for block in blocks(page):
        if block.mark is not None:
            continue
        # Padding keeps the page's line numbers in tracebacks.
        source = "\n" * (block.line - 1) + block.code
        exec(compile(source, str(DOCS / page), "exec"), namespace)
        ran += 1
    assert ran >= 4
    capsys.readouterr()  # what the blocks print is for readers


def _test_files() -> list[Block]:
    return [b for page in PAGES for b in blocks(page) if b.mark == "pytest"]


@pytest.mark.parametrize("block", _test_files(), ids=lambda b: f"{b.page}:{b.line}")
def test_test_file_block_passes(block: Block, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_from_docs=block.code)
    tests = block.code.count("\ndef test_") + block.code.count("\nasync def test_")
    assert tests >= 1
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    # anyio's plugin runs an async test once per installed backend (trio too, when present).
    assert outcomes.get("passed", 0) >= tests, result.stdout.str()
    assert set(outcomes) <= {"passed", "warnings"}, result.stdout.str()


def test_plugin_page_blocks_parse() -> None:
    found = blocks("plugins.md")
    assert len(found) >= 5
    for block in found:
        ast.parse(block.code, f"docs/plugins.md:{block.line}")


_LINK = re.compile(r"\]\(([^)#:]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", ["index.md", "plugins.md", *PAGES])
def test_relative_links_resolve(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    links = _LINK.findall(text)
    assert links, page
    missing = [link for link in links if not (DOCS / link).exists()]
    assert not missing, f"{page} links to files that do not exist: {missing}"
