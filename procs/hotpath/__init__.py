"""hotpath: features, inference and execution as one OS process (topology ``colocated``).

See procs.hotpath.proc and docs/architecture.md, "Topologies".
"""

from __future__ import annotations

__all__: list[str] = []
