"""Finding a pipeline's own source files, recording them, and checking them against the disk."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orch._loader import import_file
from orch._sources import (
    RecordedSources,
    check_sources,
    find_sources,
    is_source_path,
    read_recorded_sources,
    record_sources,
)
from orch.errors import PipelineLoadError
from traces import MemoryStore, digest

# Module names the tests below import; each test forgets them again (sys.modules is global).
_NAMES = ("src_helper", "src_lib", "src_lazy", "src_dynamic", "src_vendored", "src_editable")


@pytest.fixture(autouse=True)
def _forget_modules() -> Iterator[None]:
    yield
    for name in list(sys.modules):
        if name.split(".")[0] in _NAMES:
            del sys.modules[name]


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_pipeline_file_and_the_neighbours_it_imports_are_found(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "flow.py": "import json, orch\nfrom src_helper import X\nfrom src_lib import b\n",
            "src_helper.py": "X = 1\n",
            "src_lib/__init__.py": "from .a import A\n",
            "src_lib/a.py": "from . import c\nA = 1\n",
            "src_lib/b.py": "B = 2\n",
            # beyond the top-level package: Python would refuse it, nothing is followed
            "src_lib/c.py": "def f():\n    from ...outside import nothing\n",
            "src_lib/unused.py": "U = 0\n",
            "notes.py": "never imported\n",
        },
    )
    import_file(tmp_path / "flow.py")
    found = find_sources(tmp_path / "flow.py")
    assert found.root == tmp_path.resolve()
    assert list(found.files) == [
        "flow.py",
        "src_helper.py",
        "src_lib/__init__.py",
        "src_lib/a.py",
        "src_lib/b.py",
        "src_lib/c.py",
    ]
    assert found.files["src_lib/b.py"] == b"B = 2\n"
    assert found.hashes()["flow.py"] == digest((tmp_path / "flow.py").read_bytes())


def test_modules_imported_later_in_functions_are_found_before_they_load(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "flow.py": (
                "import importlib\n\n"
                "def step():\n"
                "    import src_lazy\n"
                "    return importlib.import_module('src_dynamic')\n"
            ),
            "src_lazy.py": "",
            "src_dynamic.py": "",
        },
    )
    import_file(tmp_path / "flow.py")
    assert "src_lazy" not in sys.modules
    assert list(find_sources(tmp_path / "flow.py").files) == [
        "flow.py",
        "src_dynamic.py",
        "src_lazy.py",
    ]


def test_the_answer_does_not_depend_on_what_else_the_process_loaded(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "flow.py": "from src_helper import X\n",
            "src_helper.py": "X = 1\n",
            "other_flow.py": "Y = 2\n",  # another pipeline in the same folder
        },
    )
    before = find_sources(tmp_path / "flow.py")  # nothing imported yet: found by reading
    import_file(tmp_path / "other_flow.py")
    import_file(tmp_path / "flow.py")
    after = find_sources(tmp_path / "flow.py")
    assert before == after
    assert list(after.files) == ["flow.py", "src_helper.py"]  # sorted, other_flow.py absent


def test_site_packages_under_the_folder_are_not_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(
        tmp_path,
        {
            "flow.py": "import src_vendored\nimport src_helper\n",
            "venv/lib/site-packages/src_vendored.py": "V = 1\n",
            "src_helper.py": "",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path / "venv/lib/site-packages"))
    importlib.import_module("src_vendored")
    assert list(find_sources(tmp_path / "flow.py").files) == ["flow.py", "src_helper.py"]


def _dist_info(
    site: Path, name: str, files: list[str], direct_url: dict[str, object] | None
) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))


def test_an_installed_distribution_under_the_folder_is_not_a_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `pip install --target vendor` next to the pipeline: no site-packages in the path.
    _write(
        tmp_path,
        {
            "flow.py": "import src_vendored\nimport src_helper\n",
            "vendor/src_vendored/__init__.py": "from . import core\n",
            "vendor/src_vendored/core.py": "",
            "src_helper.py": "",
        },
    )
    vendor = tmp_path / "vendor"
    _dist_info(
        vendor,
        "src-vendored",
        ["src_vendored/__init__.py", "src_vendored/core.py"],
        direct_url=None,
    )
    monkeypatch.syspath_prepend(str(vendor))
    importlib.import_module("src_vendored")
    assert list(find_sources(tmp_path / "flow.py").files) == ["flow.py", "src_helper.py"]


def test_an_editable_install_counts_as_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A project installed with `pip install -e` (a path-based editable, as hatchling makes):
    # a pipeline at its top imports the project's package, which is not the run's code.
    project = tmp_path / "project"
    _write(
        project,
        {
            "flow.py": "import src_editable\nimport src_helper\n",
            "src_editable/__init__.py": "from . import core\n",
            "src_editable/core.py": "",
            "src_helper.py": "",
            "examples/flow2.py": "from src_editable import core\nimport src_helper2\n",
            "examples/src_helper2.py": "",
        },
    )
    site = tmp_path / "site"
    _dist_info(
        site,
        "src-editable",
        [],
        direct_url={"url": project.resolve().as_uri(), "dir_info": {"editable": True}},
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(project))  # what the editable's .pth does
    importlib.import_module("src_editable")
    assert list(find_sources(project / "flow.py").files) == ["flow.py", "src_helper.py"]
    assert list(find_sources(project / "examples/flow2.py").files) == [
        "flow2.py",
        "src_helper2.py",
    ]


def test_a_pipeline_inside_an_editable_package_keeps_its_neighbours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    _write(
        project,
        {
            "src_editable/__init__.py": "",
            "src_editable/pipes/flow.py": "from src_editable.pipes import prompts\n",
            "src_editable/pipes/__init__.py": "",
            "src_editable/pipes/prompts.py": "",
        },
    )
    site = tmp_path / "site"
    _dist_info(
        site,
        "src-editable",
        [],
        direct_url={"url": project.resolve().as_uri(), "dir_info": {"editable": True}},
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(project))
    importlib.import_module("src_editable.pipes.prompts")
    assert list(find_sources(project / "src_editable/pipes/flow.py").files) == [
        "__init__.py",
        "flow.py",
        "prompts.py",
    ]


def test_the_repository_examples_record_their_neighbour_module() -> None:
    example = Path(__file__).parents[2] / "examples" / "acar_sigma.py"
    found = find_sources(example)
    assert {"acar_sigma.py", "quickstart.py"} <= set(found.files)  # `from quickstart import`
    assert not any(f.startswith(("orch", "routers", "agents")) for f in found.files)


def _recorded(tmp_path: Path) -> tuple[RecordedSources, MemoryStore]:
    _write(tmp_path, {"flow.py": "from src_helper import X\n", "src_helper.py": "X = 1\n"})
    store = MemoryStore()
    origin = {"sources": record_sources(store, find_sources(tmp_path / "flow.py"))}
    recorded = RecordedSources.from_origin(origin, "run-1")
    assert recorded is not None
    return recorded, store


def test_recorded_sources_are_in_the_store_and_match_the_disk(tmp_path: Path) -> None:
    recorded, store = _recorded(tmp_path)
    assert recorded.root == str(tmp_path.resolve())
    assert dict(recorded.files) == {
        "flow.py": digest(b"from src_helper import X\n"),
        "src_helper.py": digest(b"X = 1\n"),
    }
    assert check_sources(recorded) == []
    back = read_recorded_sources(store, recorded)
    assert back.files == find_sources(tmp_path / "flow.py").files


def test_a_changed_a_missing_and_a_non_file_source_are_each_reported(tmp_path: Path) -> None:
    recorded, _ = _recorded(tmp_path)
    (tmp_path / "src_helper.py").write_text("X = 2\n")
    (change,) = check_sources(recorded)
    assert (change.path, change.recorded, change.now) == (
        "src_helper.py",
        digest(b"X = 1\n"),
        digest(b"X = 2\n"),
    )
    assert change.file == tmp_path.resolve() / "src_helper.py"
    assert change.recorded in change.describe() and str(change.now) in change.describe()

    (tmp_path / "src_helper.py").unlink()
    os.mkfifo(tmp_path / "flow.py.fifo")
    (tmp_path / "flow.py").unlink()
    (tmp_path / "flow.py.fifo").rename(tmp_path / "flow.py")  # a FIFO must not hang the check
    changes = check_sources(recorded)
    assert [(c.path, c.now) for c in changes] == [("flow.py", None), ("src_helper.py", None)]
    assert "missing" in changes[1].describe()


def test_the_check_reads_the_files_under_another_root_when_given(tmp_path: Path) -> None:
    recorded, store = _recorded(tmp_path / "a")
    copy = tmp_path / "b"
    copy.mkdir()
    for rel, data in read_recorded_sources(store, recorded).files.items():
        (copy / rel).write_bytes(data)
    assert check_sources(recorded, copy) == []
    (copy / "flow.py").write_text("changed\n")
    assert [c.path for c in check_sources(recorded, copy)] == ["flow.py"]


def test_a_run_without_sources_has_none() -> None:
    assert RecordedSources.from_origin({"pipeline": "/x/flow.py:pipeline"}, "run-1") is None


@pytest.mark.parametrize(
    "sources",
    [
        "flow.py",
        {"root": "relative/dir", "files": {"flow.py": digest(b"")}},
        {"root": "/abs", "files": {}},
        {"root": "/abs", "files": {"../flow.py": digest(b"")}},
        {"root": "/abs", "files": {"/etc/flow.py": digest(b"")}},
        {"root": "/abs", "files": {"a/./flow.py": digest(b"")}},
        {"root": "/abs", "files": {"flow.sh": digest(b"")}},
        {"root": "/abs", "files": {"flow.py": "sha256:short"}},
    ],
)
def test_a_malformed_sources_record_is_refused(sources: object) -> None:
    with pytest.raises(PipelineLoadError, match="run run-1 records its source files"):
        RecordedSources.from_origin({"sources": sources}, "run-1")


def test_source_paths_are_relative_paths_to_python_files() -> None:
    assert is_source_path("flow.py") and is_source_path("lib/prompts.py")
    for bad in ["", "/flow.py", "../flow.py", "a//b.py", "a/../b.py", "a\\b.py", "c:x.py", "x.pyc"]:
        assert not is_source_path(bad), bad


@given(st.text(alphabet="py./\\:\x00", max_size=12))
def test_an_accepted_source_path_stays_under_the_root(path: str) -> None:
    if is_source_path(path):
        joined = os.path.normpath(os.path.join("/root/dir", path))
        assert joined.startswith("/root/dir/")
        assert joined.endswith(".py")
