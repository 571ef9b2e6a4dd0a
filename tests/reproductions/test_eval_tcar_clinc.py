"""The TCAR-on-CLINC150 script (``reproductions/eval_tcar_clinc.py``) runs end to end on a
few test queries (it reads the shared data at run time and says so when it is absent):
trains both configurations, records every test query as a run, replays a sample clean,
verifies the store, and saves an evaluation file whose figures can be recomputed from the
runs it holds."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from example_modules import dataset_or_skip
from reproduction_scripts import load_script

from orch_reproductions.adapters.clinc import read_domains
from orch_reproductions.clinc_team import figures, record_of
from routers import sentence_embeddings_available
from routers.eval import data_root
from routers.eval._evalfile import load


def script() -> ModuleType:
    return load_script("eval_tcar_clinc")


def test_tcar_clinc_script_trains_calibrates_runs_replays_and_saves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset_or_skip("clinc150")
    module = script()
    saved = tmp_path / "tcar.json"
    argv = ["--limit", "20", "--per-intent", "3", "--replay-sample", "3", "--save", str(saved)]
    assert module.main(argv) == 0
    out = capsys.readouterr().out
    assert "150 intent agents from the train split (450 queries, 100 out-of-scope)" in out
    assert "measured on test: 20 queries (17 in-scope, 3 out-of-scope)" in out
    assert out.count("replayed 3 runs: 0 divergences") == 2
    assert "verified the store: 40 runs" in out and ", 0 problems" in out
    for title in ("the trained offline router", "threshold sweep", "Wall time per phase"):
        assert title in out
    ev = load(saved)
    assert ev.dataset == "clinc150" and ev.split == "test" and ev.tasks == 20
    assert [c.params["train"]["sentence"] for c in ev.configs] == [None, False]
    kinds = [c.params["embedder"] for c in ev.configs]
    assert ("wordllama" in kinds[0]) == sentence_embeddings_available()
    assert kinds[1] == ["tfidf-word", "tfidf-char_wb"]
    domain_of = read_domains(data_root() / "clinc150" / "domains.json")
    for c in ev.configs:
        assert c.params["router_state"].startswith("sha256:")
        assert len(c.runs) == 20 and all(r.ok for r in c.runs)
        assert c.summary["cost_usd"] == 0.0 and c.summary["divergences"] == 0
        # The saved figures come from the saved runs' details alone.
        recomputed = figures([record_of(r.details) for r in c.runs], domain_of)
        assert recomputed.as_dict() == c.summary["clinc150"]
        # The harness's grade is the accuracy over all queries.
        assert c.summary["accuracy"] == pytest.approx(recomputed.accuracy, abs=1e-6)
        assert recomputed.in_scope == 17 and recomputed.queries == 20
        assert set(c.summary["phases_seconds"]) >= {"train", "calibrate on val", "test runs"}
    results, sweep, phases = ev.tables
    assert len(results.rows) == len(module.TARGETS) + 1
    assert results.rows[-1][1] == module.PAPER_ACCURACY
    assert all(cell in ("met", "missed", "—", None) for row in results.rows for cell in row[2::2])
    assert len(sweep.rows) == 2 * (1 + len(module.QUANTILES))
    assert phases.rows[0][0] == "load data, build team"


def test_tcar_clinc_script_skips_without_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ORCH_EVAL_DATA", str(tmp_path / "nothing-here"))
    saved = tmp_path / "never.json"
    assert script().main(["--limit", "5", "--save", str(saved)]) == 0
    assert capsys.readouterr().out.startswith("skipped: ")
    assert not saved.exists()
