"""matcher: route a company's technical difficulty to the research institutes that can solve it."""

from __future__ import annotations

__version__ = "0.1.0"
