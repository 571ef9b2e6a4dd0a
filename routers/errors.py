"""Every exception the ``routers`` package raises on purpose, in one place.

The tree::

    ValueError
     └── DatasetError            a dataset cannot be read, or is malformed
          ├── DataUnavailable    the recorded data a named dataset reads is not on this machine
          └── DatasetPluginError a dataset plugin (entry-point group ``orch.datasets``) is
                                 missing, ambiguous or broken; also an
                                 ``orch.errors.PluginError``, as every plugin error is
    RouterStateError             a trained router's state cannot be used: damaged, not the
                                 version it claims, or made by an embedder this machine lacks
     └── EmbedderUnavailable     sentence embeddings were asked for (or a state was trained
                                 with them) but the ``embed`` extra is not installed, or its
                                 weights are not the pinned ones

``DatasetError`` is a ``ValueError`` because a malformed file or an unknown name is a bad
value given by the caller. Every message names the thing at fault and the fix
("...; fix: ..."). Users import these from the package faces, ``routers`` or
``routers.eval``. This module must never import the rest of the package: every other module
may import it (it imports only ``orch.errors``).
"""

from __future__ import annotations

from orch.errors import PluginError

__all__ = [
    "DataUnavailable",
    "DatasetError",
    "DatasetPluginError",
    "EmbedderUnavailable",
    "RouterStateError",
]


class DatasetError(ValueError):
    """A dataset cannot be read or is malformed; the message names the file and the fix."""


class DataUnavailable(DatasetError):
    """The recorded data a dataset needs is not on this machine (tests and scripts skip)."""


class DatasetPluginError(DatasetError, PluginError):
    """A named dataset is not installed, is provided by two packages, or its plugin fails to
    load; the message names the package and the fix."""


class RouterStateError(ValueError):
    """A trained router's state cannot be used (damaged, not the version it names, or needing
    an embedder this machine lacks); the message names the state and the fix."""


class EmbedderUnavailable(RouterStateError):
    """Sentence embeddings are needed but the ``embed`` extra is absent, or its weights are
    not the pinned file."""
