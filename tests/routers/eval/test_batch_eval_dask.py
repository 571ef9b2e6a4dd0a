"""Evaluations on a real Dask cluster (a scheduler and two worker processes on 127.0.0.1): the
workers make the recorded models themselves from the dataset's name and digest, and every
task's run has the root hash and grade of the in-process evaluation.

Skipped without ``distributed``, unless ``ORCH_REQUIRE_DASK=1`` (CI), where that fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask_cluster
import pytest
from eval_batch_files import eval_dataset, eval_files
from typer.testing import CliRunner

from orch import BatchSpec, ExecutorError, load_pipeline
from orch.batch.dask import DaskExecutor
from orch.cli import app
from routers.eval import eval_services, evaluate
from traces import MemoryStore
from traces._open import open_store

dask_cluster.require_dask()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with dask_cluster.dask_cluster(2, tmp_path_factory.mktemp("dask-eval")) as c:
        yield c


async def test_an_evaluation_on_two_workers_has_the_in_process_root_hashes(
    cluster: Any, tmp_path: Path
) -> None:
    data, router = eval_files(tmp_path, n=150)
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    done: list[int] = []
    report = await evaluate(
        f"{router}:router",
        str(data),
        store,
        executor=DaskExecutor(cluster.address, parallel=4, chunk_size=20),
        seed=5,
        progress=lambda n, _total: done.append(n),
    )
    reference = await evaluate(
        load_pipeline(f"{router}:router"), eval_dataset(150), MemoryStore(), seed=5
    )
    assert report.tasks == 120 and report.failed == 0 and done[-1] == 120
    assert [r.root_hash for r in report.results] == [r.root_hash for r in reference.results]
    assert [(r.task, r.score, r.calls) for r in report.results] == [
        (r.task, r.score, r.calls) for r in reference.results
    ]
    assert (report.accuracy, report.cost_usd) == (reference.accuracy, reference.cost_usd)
    assert all(r.run_id.startswith(f"{report.batch_id}-") for r in report.results)
    assert [r.run_id for r in report.results] == [r.run_id for r in reference.results]


def test_orch_eval_on_dask_matches_the_in_process_command(cluster: Any, tmp_path: Path) -> None:
    data, router = eval_files(tmp_path, n=60)
    base = ["eval", str(data), "--pipeline", f"{router}:router", "--json", "--seed", "2"]
    here = CliRunner().invoke(app, [*base, "--store", str(tmp_path / "here")])
    assert here.exit_code == 0, here.output
    remote_args = [*base, "--store", str(tmp_path / "shared"), "--executor", "dask"]
    remote = CliRunner().invoke(app, [*remote_args, "--scheduler", cluster.address])
    assert remote.exit_code == 0, remote.output
    a, b = json.loads(here.stdout), json.loads(remote.stdout)
    assert (b["accuracy"], b["cost_usd"], b["tasks"]) == (a["accuracy"], a["cost_usd"], a["tasks"])
    assert [r["score"] for r in b["runs"]] == [r["score"] for r in a["runs"]]
    assert [r["run_id"] for r in b["runs"]] == [r["run_id"] for r in a["runs"]]
    assert b["runs"][0]["run_id"].startswith("eval-")


async def test_workers_with_other_data_are_named_before_anything_runs(
    cluster: Any, tmp_path: Path
) -> None:
    data, router = eval_files(tmp_path, n=10)
    params = eval_services.services_params(str(data), None)
    spec = BatchSpec.create(
        f"{router}:router",
        [{"question": "Question 1: A or B?"}],
        store=str(tmp_path / "s"),
        services=eval_services.TARGET,
        services_params=params | {"digest": "sha256:" + "0" * 64},
    )
    with pytest.raises(ExecutorError, match="2 of 2 Dask workers cannot run") as err:
        await DaskExecutor(cluster.address).run_batch(spec)
    assert "its services cannot be made: DatasetError" in str(err.value)
    assert "fix: give every worker the same copy of the data" in str(err.value)
    with open_store(spec.store) as st:
        assert st.run_ids() == []  # refused before any run began
