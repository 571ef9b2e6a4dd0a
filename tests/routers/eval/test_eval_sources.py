"""Named datasets: adapters registered in process and loaded from ``orch.datasets`` plugins
(installed here as real distributions on ``sys.path``: a package and its dist-info), lazily,
with errors that name the package and the fix."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from routers.eval import (
    ADAPTERS,
    DATASETS_GROUP,
    Dataset,
    DatasetAdapter,
    DatasetError,
    DatasetPluginError,
    DataUnavailable,
    adapter,
    dataset_names,
    load_dataset,
    register_adapter,
)

ADAPTER_MODULE = """
from pathlib import Path

from routers.eval import Dataset, Task, adapter


@adapter("{name}", "{folder}")
def read(folder: Path) -> Dataset:
    text = (folder / "question.txt").read_text()
    return Dataset(name="{name}", tasks=[Task(id="q1", question=text)])


not_an_adapter = 42
"""


def install(site: Path, dist: str, entries: dict[str, str], source: str) -> None:
    """Lay out distribution ``dist`` as pip does: its package (``dist`` with ``_`` for
    ``-``, holding ``source``) and a dist-info whose entry_points.txt lists ``entries``
    (dataset name -> attribute of the package) in the ``orch.datasets`` group."""
    package = dist.replace("-", "_")
    (site / package).mkdir()
    (site / package / "__init__.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    lines = [f"[{DATASETS_GROUP}]", *(f"{k} = {package}:{v}" for k, v in entries.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site directory on ``sys.path``; what the test registers or imports is undone."""
    where = tmp_path / "site"
    where.mkdir()
    monkeypatch.syspath_prepend(str(where))
    monkeypatch.setenv("ORCH_EVAL_DATA", str(tmp_path / "data"))
    before = dict(ADAPTERS)
    yield where
    ADAPTERS.clear()
    ADAPTERS.update(before)
    for name in [m for m in sys.modules if m.startswith("test_plugin_")]:
        del sys.modules[name]


def test_a_plugin_dataset_is_found_by_name_and_loaded_only_when_asked(
    site: Path, tmp_path: Path
) -> None:
    source = ADAPTER_MODULE.format(name="plug-set", folder="plug_folder")
    install(site, "test-plugin-one", {"plug-set": "read"}, source)
    assert "plug-set" in dataset_names()
    assert "test_plugin_one" not in sys.modules  # listing a name imports nothing
    with pytest.raises(DataUnavailable, match="reads plug_folder/ under the data root"):
        load_dataset("plug-set")
    (tmp_path / "data" / "plug_folder").mkdir(parents=True)
    (tmp_path / "data" / "plug_folder" / "question.txt").write_text("What is 2 + 2?")
    data = load_dataset("plug-set")
    assert (data.name, data.tasks[0].question) == ("plug-set", "What is 2 + 2?")
    assert isinstance(ADAPTERS["plug-set"], DatasetAdapter)
    assert ADAPTERS["plug-set"].folder == "plug_folder"


def test_unknown_names_say_which_exist_and_where_named_datasets_come_from(site: Path) -> None:
    source = ADAPTER_MODULE.format(name="plug-set", folder="f")
    install(site, "test-plugin-one", {"plug-set": "read"}, source)
    with pytest.raises(DatasetPluginError) as info:
        load_dataset("nope")
    message = str(info.value)
    assert "no dataset named 'nope'" in message and "plug-set" in message
    assert DATASETS_GROUP in message and "pip install -e reproductions" in message
    assert isinstance(info.value, DatasetError) and isinstance(info.value, ValueError)


def test_two_plugins_for_one_name_are_refused_naming_both(site: Path) -> None:
    for n in ("one", "two"):
        source = ADAPTER_MODULE.format(name="twice", folder="f")
        install(site, f"test-plugin-{n}", {"twice": "read"}, source)
    with pytest.raises(DatasetPluginError, match="offered by several plugins") as info:
        load_dataset("twice")
    assert "test-plugin-one 1.2.3" in str(info.value)
    assert "test-plugin-two 1.2.3" in str(info.value)
    assert "uninstall all but one" in str(info.value)


def test_a_broken_plugin_names_its_package(site: Path) -> None:
    broken = "import a_module_that_is_not_installed\n"
    install(site, "test-plugin-broken", {"bad": "x"}, broken)
    with pytest.raises(DatasetPluginError, match=r"package test-plugin-broken 1\.2\.3") as info:
        load_dataset("bad")
    assert "a_module_that_is_not_installed" in str(info.value)
    assert "bad" not in ADAPTERS


@pytest.mark.parametrize(
    ("target", "given"),
    [("not_an_adapter", "a int"), ("read", "the adapter of 'other-name'")],
)
def test_a_plugin_must_give_the_adapter_of_its_name(site: Path, target: str, given: str) -> None:
    source = ADAPTER_MODULE.format(name="other-name", folder="f")
    install(site, "test-plugin-odd", {"odd": target}, source)
    with pytest.raises(DatasetPluginError, match=f"gives {given}, not the adapter of 'odd'"):
        load_dataset("odd")
    assert "odd" not in ADAPTERS


def test_registering_again_is_a_no_op_and_a_second_adapter_is_refused(site: Path) -> None:
    def read(folder: Path) -> Dataset:
        raise AssertionError("never read")

    made = adapter("in-process", "here")(read)
    assert ADAPTERS["in-process"] is made and register_adapter(made) is made
    other = DatasetAdapter(name="in-process", folder="there", read=read)
    with pytest.raises(DatasetPluginError, match="two adapters are named 'in-process'"):
        register_adapter(other)
    assert ADAPTERS["in-process"].folder == "here"
    assert "in-process" in dataset_names()
