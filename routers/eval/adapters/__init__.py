"""Adapters of the shared recorded-data folders; importing this registers them all.

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

from . import clinc, gsm8k, mot, routerarena, routerbench

__all__ = ["clinc", "gsm8k", "mot", "routerarena", "routerbench"]
