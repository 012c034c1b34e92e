"""Lattice-based sequence training: lattices as state graphs, MMI / boosted MMI / sMBR / MPFE."""

from pykd.seq.lattice_graph import (
    LatticeGraph,
    LatticeGraphError,
    lattice_to_graph,
    read_lattice_graphs,
)
from pykd.seq.objectives import (
    SeqStats,
    arc_posteriors,
    boost_frame_error,
    frame_accuracy,
    mmi,
    smbr,
)

__all__ = [
    "LatticeGraph",
    "LatticeGraphError",
    "SeqStats",
    "arc_posteriors",
    "boost_frame_error",
    "frame_accuracy",
    "lattice_to_graph",
    "mmi",
    "read_lattice_graphs",
    "smbr",
]
