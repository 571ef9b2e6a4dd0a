"""orch-plugin-example: a minimal third-party package that extends orch.

It contributes, through entry points (see ``pyproject.toml``), the agent ``word-count``
(:class:`~orch_plugin_example.agents.WordCount`, group ``orch.agents``) and the command
``orch run-stats`` (:mod:`orch_plugin_example.cli`, group ``orch.cli``). It imports only
orch's public faces (``orch``, ``orch.cli.common``, ``traces``), and must never do work at
import: orch imports the command module whenever the ``orch`` command starts.
"""

from __future__ import annotations

from orch_plugin_example.agents import Counted, Text, WordCount

__all__ = ["Counted", "Text", "WordCount"]
