"""Fleet sync for the Python offer service: shares the registry's breakers
with the other instances through Redis (the library's sync, SYNC.md).

Placeholder until the sync ABI is known: reports "unavailable".
"""

from __future__ import annotations

from typing import Any, Dict


class NoSync:
    def __init__(self, why: str) -> None:
        self.why = why

    def status(self) -> Dict[str, Any]:
        return {"enabled": False, "status": self.why}

    def stop(self) -> None:
        pass


def start(registry: Any, url: str, namespace: str, instance: str) -> Any:
    if not url:
        return NoSync("off")
    return NoSync("unavailable: the library has no sync ABI")
