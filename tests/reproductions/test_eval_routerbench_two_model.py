"""The RouterBench and two-model scripts (``reproductions/eval_routerbench.py``,
``eval_two_model.py``) run end to end on a few tasks (they read the shared recordings at run
time and say so when they are absent)."""

from __future__ import annotations

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
    assert module.main(["--limit", "12", "--parallel", "4", "--save", str(save)]) == 0
    out = capsys.readouterr().out
    assert "RouterBench test: 12 tasks, 11 models" in out
    assert "zero router: hull" in out and "oracle: accuracy" in out
    measured = [line for line in out.splitlines() if "/task" in line]  # one per setting

    def count(prefix: str) -> int:
        return sum(1 for line in measured if line.startswith(prefix))

    assert count("  knn k=") == len(module.LAMBDAS)
    assert count("  amro-s β=") == len(module.BETAS)
    assert count("  cascade ") == len(module.CASCADES)
    assert "McNemar" in out and out.count(", p = ") == 5
    for router in ("kNN (k=", "AMRO-S:", "EMA router:", "agreement cascade:", "random router:"):
        assert router in out
    assert "AIQ per router" in out and "best: " in out and "failed" not in out
    ev = evalfile.load(save)
    assert len(ev.configs) == 1 + len(module.LAMBDAS) + len(module.BETAS) + 1 + len(module.CASCADES)
    assert all(len(c.runs) == 12 for c in ev.configs)
    assert ev.tables[0].columns[0] == "router"


def test_two_model_script_gives_apgr_and_cpt(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dataset_or_skip("routellm-gsm8k")
    module: Any = load_script("eval_two_model")
    assert module.main(["--limit", "10", "--save-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("APGR ") == len(module.SOURCES)
    ev = evalfile.load(tmp_path / "two-model-routellm-gsm8k.json")
    assert len(ev.configs) == len(module.LAMBDAS) and ev.tables[0].columns[1] == "strong share"
