"""The ACAR-table script (``reproductions/eval_acar_mot.py``) runs end to end on a few test
tasks of DATE and GSM8K, prints both tables and saves one evaluation file per dataset (it
reads the shared recordings at run time and says "skipped" when they are absent)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from example_modules import dataset_or_skip
from reproduction_scripts import load_script

from orch_reproductions.acar_table import COLUMNS, REFERENCE
from routers.eval._evalfile import load


def script() -> ModuleType:
    return load_script("eval_acar_mot")


def test_acar_script_prints_and_saves_both_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset_or_skip("mot-date")
    module = script()
    argv = ["--limit", "12", "--parallel", "4", "--save-dir", str(tmp_path), "--store", "memory:"]
    assert module.main(argv) == 0
    out = capsys.readouterr().out
    assert "skipped" not in out
    for name in ("mot-date", "mot-gsm8k"):
        assert f"ACAR table: {name}, test split, 12 tasks" in out
        assert f"McNemar vs σ-routing: {name}, 12 tasks" in out
        ev = load(tmp_path / f"acar-{name}.json")
        assert (ev.dataset, ev.split, ev.tasks) == (name, "test", 12)
        assert len(ev.configs) == 9 and all(len(c.runs) == 12 for c in ev.configs)
        assert all(r.ok and r.run_id for c in ev.configs for r in c.runs)
        acar_tab, mcnemar_tab, paper = ev.tables
        assert acar_tab.columns == COLUMNS and len(acar_tab.rows) == 9
        assert len(mcnemar_tab.rows) == 8 and paper.title.startswith("ACAR paper")
        assert acar_tab.note is not None and "not an LLM" in acar_tab.note
        # The table's figures are the saved runs' figures.
        row = next(r for r in acar_tab.rows if r[0] == REFERENCE)
        ref = ev.config(REFERENCE)
        assert row[2] == round(sum(r.score for r in ref.runs) / 12, 3)
        assert row[4] == pytest.approx(sum(r.cost_usd for r in ref.runs), abs=1e-4)
        shares = [x if isinstance(x, float) else 0.0 for x in row[5:8]]
        assert sum(shares) == pytest.approx(1.0, abs=0.002)
        # Every σ-routing run took the mode its σ calls for.
        for r in ref.runs:
            assert r.mode == {0.0: "single", 0.5: "two-model", 1.0: "full"}[r.sigma or 0.0]
        # Single models make one call; "three models, always" three plus the rule judge.
        assert all(len(r.calls) == 1 for r in ev.config(ev.configs[0].label).runs)
        three = ev.config("three models, always").runs
        assert all(r.calls[-1][0] == "rule-judge[majority-strong]" for r in three)
    paper_rows = out.split("ACAR paper, as reported")[1].splitlines()[3:7]
    assert [r.split()[-5] for r in paper_rows] == ["0.454", "0.544", "0.556", "0.636"]


def test_acar_script_skips_cleanly_without_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ORCH_EVAL_DATA", str(tmp_path))
    assert script().main(["--limit", "2", "--save-dir", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.startswith("skipped: dataset 'mot-date' reads")
    assert not (tmp_path / "out").exists()
