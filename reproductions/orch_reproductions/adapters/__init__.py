"""Adapters of the shared recorded-data folders (``../shared/data``), one module per source.

Each is an ``orch.datasets`` entry point of this distribution (see ``pyproject.toml``), so
``routers.eval.load_dataset(name)`` imports a module only when one of its datasets is asked
for; importing a module registers its datasets in this process too. Nothing here imports the
modules: a broken source module must not break the others.

=================  ====================================  ==========================
dataset            folder                                license
=================  ====================================  ==========================
``mot-date``       ``mot_cascade_date_gsm8k``            none stated (run time only)
``mot-gsm8k``      ``mot_cascade_date_gsm8k``            none stated (run time only)
``gsm8k-joined``   ``gsm8k_joined``                      see its sources
``routellm-gsm8k`` ``routellm_mmlu_gsm8k_2model``        Apache-2.0
``routellm-mmlu``  ``routellm_mmlu_gsm8k_2model``        Apache-2.0
``routerbench``    ``routerbench_arc_winogrande_mbpp``   none stated (run time only)
``routerarena``    ``routerarena_sub10_2model``          Apache-2.0
``clinc150``       ``clinc150``                          CC BY 3.0
=================  ====================================  ==========================
"""

from __future__ import annotations

__all__: list[str] = []
