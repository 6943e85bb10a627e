"""What every verb shares: the consoles and the per-invocation state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rich.console import Console

console = Console(soft_wrap=True)
"""Results (tables, JSON) go to stdout."""
err_console = Console(stderr=True, soft_wrap=True)
"""Progress, warnings and errors go to stderr."""

SEVERITY_STYLE = {"CRITICAL": "bold red", "HIGH": "red", "MEDIUM": "yellow", "LOW": "cyan",
                  "NEGLIGIBLE": "dim", "UNKNOWN": "dim"}


@dataclass
class State:
    config_path: Optional[Path]
    log_format: str = "text"
    config: Any = None

    @property
    def interactive(self) -> bool:
        """Progress bars only for a human at a terminal."""
        return self.log_format == "text" and err_console.is_terminal


def counts_text(counts: dict[str, int]) -> str:
    parts = [f"{k[0]}:{v}" for k, v in counts.items() if v]
    return " ".join(parts) if parts else "none"
