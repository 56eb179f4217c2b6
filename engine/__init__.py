"""MuSc Inspector engine: zero-shot anomaly scoring with MuSc-V2 (pure compute, no GUI).

Entry points: :class:`engine.session.session.InspectionSession` (staged, cancellable,
re-scorable run),
:func:`engine.data.discover.discover_datasets` (layouts), :mod:`engine.cli` (``musc``).
"""

__version__ = "0.1.0"
