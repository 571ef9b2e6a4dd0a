"""Loading pipelines from files: the spec hash does not depend on where the file lives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orch._loader import load_pipeline
from orch.errors import PipelineLoadError

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart.py"


def test_same_file_in_two_places_has_the_same_spec_hash(tmp_path: Path) -> None:
    hashes = []
    for where in ("one", "two/deeper"):
        target = tmp_path / where / "quickstart.py"
        target.parent.mkdir(parents=True)
        shutil.copy(QUICKSTART, target)
        hashes.append(load_pipeline(str(target)).spec_hash)
    assert hashes[0] == hashes[1] == load_pipeline(str(QUICKSTART)).spec_hash


def test_a_changed_model_field_changes_the_spec_hash(tmp_path: Path) -> None:
    text = QUICKSTART.read_text()
    assert "class FinalAnswer(BaseModel):\n    answer: str\n" in text
    changed = text.replace(
        "class FinalAnswer(BaseModel):\n    answer: str\n",
        "class FinalAnswer(BaseModel):\n    answer: str\n    note: str = ''\n",
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "quickstart.py").write_text(text)
    (tmp_path / "b" / "quickstart.py").write_text(changed)
    a = load_pipeline(str(tmp_path / "a" / "quickstart.py"))
    b = load_pipeline(str(tmp_path / "b" / "quickstart.py"))
    assert a.spec_hash != b.spec_hash


def test_missing_name_lists_the_pipelines_in_the_file() -> None:
    with pytest.raises(PipelineLoadError, match="has no object named 'nope'"):
        load_pipeline(f"{QUICKSTART}:nope")
