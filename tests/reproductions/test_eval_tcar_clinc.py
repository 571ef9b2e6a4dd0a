"""The TCAR-on-CLINC150 script (``reproductions/eval_tcar_clinc.py``) runs end to end on a
few test queries (it reads the shared data at run time and says so when it is absent) and
saves an evaluation file whose figures can be recomputed from the runs it holds."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from example_modules import dataset_or_skip
from reproduction_scripts import load_script

from orch_reproductions.clinc_team import outcome_of
from routers.eval._evalfile import load
from routers.eval._setmetrics import summarize


def script() -> ModuleType:
    return load_script("eval_tcar_clinc")


def test_tcar_clinc_script_tunes_on_val_and_saves_the_test_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset_or_skip("clinc150")
    module = script()
    saved = tmp_path / "tcar.json"
    argv = ["--limit", "40", "--parallel", "4", "--grid", "small", "--save", str(saved)]
    assert module.main(argv) == 0
    out = capsys.readouterr().out
    assert "measured on test: 40 queries (33 in-scope, 7 out-of-scope)" in out
    assert "tuned the domain team on val over 4 grid points" in out
    assert "tuned the intent team on val over 2 grid points" in out
    for title in ("the final answers", "TCAR-style routing", "Against the paper", "val split"):
        assert title in out
    ev = load(saved)
    assert ev.dataset == "clinc150" and ev.split == "test" and ev.tasks == 40
    labels = [c.label for c in ev.configs]
    assert sum(label.endswith("(tuned)") for label in labels) == 1
    assert {"intent agents (150), tuned", "domain agents, no oos thresholds"} <= set(labels)
    sweep = [c for c in ev.configs if c.params["level"] == "domain"]
    assert len({c.params["lexical_min_similarity"] for c in sweep}) >= 4
    assert out.count("simulation agrees on 40/40") == len(ev.configs)
    for c in ev.configs:
        assert len(c.runs) == 40 and all(r.ok for r in c.runs)
        assert c.summary["cost_usd"] == 0.0
        # The saved table figures come from the saved runs' details alone.
        recomputed = summarize([outcome_of(r.details) for r in c.runs]).as_dict()
        assert recomputed == c.summary["tcar"]
        # The harness's accuracy is the final-answer accuracy (oos a label).
        assert c.summary["accuracy"] == pytest.approx(c.summary["tcar"]["accuracy"], abs=1e-6)
    assert [t.title for t in ev.tables][:2] == [
        "CLINC150 test: the final answers (%)",
        "CLINC150 test: TCAR-style routing (%; agents per query)",
    ]
    assert len(ev.tables[0].rows) == len(ev.configs)
    paper = ev.tables[2]
    assert [row[1] for row in paper.rows] == [91.25, None, 89.65, 1.37]
    assert len(paper.columns) == 5


def test_tcar_clinc_script_skips_without_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ORCH_EVAL_DATA", str(tmp_path / "nothing-here"))
    saved = tmp_path / "never.json"
    assert script().main(["--limit", "5", "--save", str(saved)]) == 0
    assert capsys.readouterr().out.startswith("skipped: ")
    assert not saved.exists()
