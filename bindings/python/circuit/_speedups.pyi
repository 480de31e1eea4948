# The optional compiled accelerator (bindings/python/src/_speedups.c):
# `with breaker:` in C. circuit/_breaker.py imports it when it was built.
from typing import Any, Dict, Literal, Optional, Type, TypeVar
from types import TracebackType

_T = TypeVar("_T", bound="FastEnter")

class FastEnter:
    def __enter__(self: _T) -> _T: ...
    def __exit__(
        self,
        et: Optional[Type[BaseException]],
        ev: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]: ...
    def _fast_set(self, breaker: int, word: int, timed: bool) -> None: ...
    def _fast_timed(self, timed: bool) -> None: ...

def bind(
    record_success: Optional[int],
    fast_mask: int,
    generation_shift: int,
    timer_namespace: Dict[str, Any],
    timer_name: str,
) -> None: ...
def _depth() -> int: ...
