"""Typing stub of the Cython module alerts_core.wire (see wire.pyx for the semantics)."""

import numpy as np
import numpy.typing as npt

BAD_SYMBOL: int
BAD_PRICE: int
BAD_QUANTITY: int
BAD_TIMESTAMP: int
FUTURE_TIME: int
MIN_TIME_MS: int
MAX_TIME_MS: int

class SymbolIds:
    def add(self, name: bytes, sid: int) -> None: ...
    def clear(self) -> None: ...
    def __len__(self) -> int: ...

def first_bad_tick(
    bad_symbol: npt.NDArray[np.uint8],
    price: npt.NDArray[np.float64],
    qty: npt.NDArray[np.float64],
    time_ms: npt.NDArray[np.int64],
    max_time_ms: int,
) -> tuple[int, int] | None: ...
def decode_ticks(
    message: bytes, ids: SymbolIds, max_time_ms: int
) -> tuple[
    npt.NDArray[np.int32],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
    list[bytes],
    tuple[int, int] | None,
]: ...
