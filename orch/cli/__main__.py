"""``python -m orch.cli``: the ``orch`` command, for when the console script is not on PATH."""

from __future__ import annotations

from orch.cli import main

main()
