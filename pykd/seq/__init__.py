"""Lattice-based sequence training: lattices as state graphs, MMI / boosted MMI / sMBR / MPFE.

Names are loaded on first use (PEP 562), so that the ``pykd`` command line can import
:mod:`pykd.seq.cli` without importing torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "LatticeGraph": "pykd.seq.lattice_graph",
    "LatticeGraphError": "pykd.seq.lattice_graph",
    "lattice_to_graph": "pykd.seq.lattice_graph",
    "read_lattice_graphs": "pykd.seq.lattice_graph",
    "SeqStats": "pykd.seq.objectives",
    "arc_posteriors": "pykd.seq.objectives",
    "boost_frame_error": "pykd.seq.objectives",
    "frame_accuracy": "pykd.seq.objectives",
    "mmi": "pykd.seq.objectives",
    "mmi_batch": "pykd.seq.objectives",
    "smbr": "pykd.seq.objectives",
    "smbr_batch": "pykd.seq.objectives",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
