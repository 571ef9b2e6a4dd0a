"""The RouterBench and two-model scripts (``reproductions/eval_routerbench.py``,
``eval_two_model.py``) run end to end on a few tasks (they read the shared recordings at run
time and say so when they are absent)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from example_modules import dataset_or_skip
from reproduction_scripts import load_script

from routers.eval import _evalfile as evalfile


def test_routerbench_script_compares_routers_with_the_zero_router(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dataset_or_skip("routerbench")
    module: Any = load_script("eval_routerbench")
    save = tmp_path / "rb.json"
    args = ["--limit", "12", "--parallel", "4", "--save", str(save), "--replay-sample", "10"]
    assert module.main(args) == 0
    out = capsys.readouterr().out
    assert "RouterBench test: 12 tasks, 11 models" in out
    assert "zero router: hull" in out and "oracle: accuracy" in out
    measured = [line for line in out.splitlines() if "/task" in line]  # one per setting

    def count(prefix: str) -> int:
        return sum(1 for line in measured if line.startswith(prefix))

    swept = {p: count(f"  {p} ") for p in ("knn", "classifier", "classifier+text", "MF", "SW")}
    assert all(1 <= n <= module.SETTINGS for n in swept.values()), swept
    assert count("  amro-s β=") == len(module.BETAS)
    assert count("  cascade ") == len(module.CASCADES)
    ev = evalfile.load(save)
    # One test per router with a curve (a router dearer than every model has none).
    assert "McNemar" in out and out.count(", p = ") == len(ev.curves) >= 7
    for router in (
        "kNN (k=",
        "classifier router (",
        "classifier+text router (",
        "MF router (",
        "SW router (",
        "AMRO-S:",
        "EMA router:",
        "agreement cascade:",
        "random router:",
    ):
        assert router in out
    assert "AIQ per router" in out and "best: " in out and "failed" not in out
    # The optimistic bound: configuration and λ chosen on test, said to be no result.
    ceiling = [line for line in out.splitlines() if line.startswith("ceiling (optimistic")]
    assert len(ceiling) == 1 and "chosen on test" in ceiling[0], ceiling
    assert any(n.startswith("Ceiling (optimistic bound") for n in ev.notes)
    assert "audit: 10 sampled runs: 10 verified, 10 replayed" in out and "0 problems" in out
    settings = 1 + sum(swept.values()) + len(module.BETAS) + 1 + len(module.CASCADES)
    assert len(ev.configs) == settings
    assert all(len(c.runs) == 12 for c in ev.configs)
    assert ev.tables[0].columns[0] == "router"
    assert [t.title.split(" ")[0] for t in ev.tables] == ["AIQ", "Settings", "McNemar:"]
    assert any(n.startswith("Audit: 10 sampled runs") for n in ev.notes)


def test_two_model_script_gives_apgr_and_cpt(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dataset_or_skip("routellm-gsm8k")
    module: Any = load_script("eval_two_model")
    args = ["--limit", "10", "--save-dir", str(tmp_path), "--replay-sample", "5"]
    assert module.main(args) == 0
    out = capsys.readouterr().out
    routers = ["kNN", *module.TRAINED]
    for router in routers:
        pattern = rf"^  {re.escape(router)} +\S+ +CV APGR "
        assert len(re.findall(pattern, out, flags=re.M)) == len(module.SOURCES), router
    assert out.count("audit: 5 sampled runs: 5 verified, 5 replayed") == len(module.SOURCES)
    # The runs' APGR is what the recorded outcomes give at the same thresholds.
    checks = re.findall(r"offline check: recorded outcomes give each run's APGR within (\S+)", out)
    assert len(checks) == len(module.SOURCES) and all(float(c) < 1e-9 for c in checks)
    ev = evalfile.load(tmp_path / "two-model-routellm-gsm8k.json")
    # Every router, kNN too, runs at the same calibrated strong-call shares.
    assert len(ev.configs) == len(module.SHARES) * len(routers)
    assert ev.tables[0].columns[:2] == ["router", "setting"]
    names = [str(r[0]).removesuffix(" *") for r in ev.tables[0].rows]
    assert names == ["kNN", "kNN, λ sweep (former)", *module.TRAINED]
    starred = [str(r[0]) for r in ev.tables[0].rows if str(r[0]).endswith(" *")]
    assert len(starred) == 1 and starred[0].removesuffix(" *") in module.TRAINED
    columns = ev.tables[0].columns
    knn, sweep, *trained = ev.tables[0].rows
    assert knn[columns.index("APGR - kNN")] == 0.0  # kNN against itself
    for row in (knn, *trained):  # measured rows: an SE and a ceiling
        assert isinstance(row[columns.index("SE")], float)
        assert isinstance(row[columns.index("ceiling")], float)
    for row in trained:
        assert isinstance(row[columns.index("SE of diff")], float)
    assert sweep[columns.index("SE")] is None and sweep[columns.index("ceiling")] is None
    assert any("chosen on test" in n for n in ev.notes)
