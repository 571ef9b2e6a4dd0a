"""Paper reproductions for orch's routers, kept out of the installed ``orch`` packages.

The ``orch-reproductions`` distribution (``pip install -e reproductions``) holds what only a
reproduction of a paper needs, on the recorded data of ``../shared/data``:

* :mod:`orch_reproductions.adapters`: the dataset adapters of the shared recordings (MoT,
  the GSM8K join, RouteLLM, RouterBench, RouterArena, CLINC150), each an entry point of the
  ``orch.datasets`` group, so ``routers.eval.load_dataset`` and ``orch eval`` find them by
  name;
* :mod:`orch_reproductions.acar_table`, :mod:`orch_reproductions.acar_judge` and
  :mod:`orch_reproductions.mot_views`: the ACAR table on the MoT recordings;
* :mod:`orch_reproductions.clinc_team`: the TCAR team on CLINC150 and its measures;
* :mod:`orch_reproductions.trained_grid`: the trained routers and the configurations the
  RouterBench and two-model reproductions choose among.

The scripts beside this package (``reproductions/eval_*.py``) run the reproductions; see
``reproductions/README.md``. Nothing here is imported by ``orch``, ``agents`` or ``routers``,
and nothing here downloads data.
"""

from __future__ import annotations

__all__: list[str] = []
