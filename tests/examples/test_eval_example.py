"""The RouterBench evaluation example runs end to end on a few test tasks (it reads the
shared recordings at run time and says so when they are absent)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from routers.eval import DataUnavailable, load_dataset

EXAMPLE = Path(__file__).parents[2] / "examples" / "eval_routerbench.py"


def test_routerbench_example_compares_routers_with_the_zero_router(
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        load_dataset("routerbench")
    except DataUnavailable as exc:
        pytest.skip(str(exc))
    spec = importlib.util.spec_from_file_location("example_eval_routerbench", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["example_eval_routerbench"] = module
    spec.loader.exec_module(module)
    assert module.main(["--limit", "12", "--parallel", "4"]) == 0
    out = capsys.readouterr().out
    assert "RouterBench test: 12 tasks, 11 models" in out
    assert "zero router: hull" in out and "oracle: accuracy" in out
    assert out.count("  kNN λ=") == len(module.LAMBDAS)
    assert "against the zero router's" in out and "(0 failed)" in out
