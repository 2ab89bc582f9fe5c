"""Winograd's minimal filtering F(m x m, 3 x 3): the transform matrices, shared by the pass that transforms
weights, the reference interpreter and the backend kernel, so the three agree by construction.

One output tile Y (m x m) of a 3x3 correlation reads an input tile d of alpha x alpha (alpha = m + 2):

    Y = A^T [ (G g G^T) (.) (B^T d B) ] A          ((.) elementwise; Lavin & Gray, 2016)

``G g G^T`` depends on the weights only and is computed once at compile time; what remains per tile and
channel pair is alpha^2 multiplies instead of 9 m^2 (m = 2: 16 vs 36, m = 4: 36 vs 144), plus the input and
output transforms, whose cost grows with the channels on one side only. The matrices are the standard ones
(interpolation points 0, 1, -1, (2, -2,) infinity).
"""

from __future__ import annotations

import numpy as np

TILE_SIZES = (2, 4)

_MATRICES: dict[int, tuple[list[list[float]], list[list[float]], list[list[float]]]] = {
    # m: (A^T [m x alpha], B^T [alpha x alpha], G [alpha x 3])
    2: ([[1, 1, 1, 0],
         [0, 1, -1, -1]],
        [[1, 0, -1, 0],
         [0, 1, 1, 0],
         [0, -1, 1, 0],
         [0, 1, 0, -1]],
        [[1, 0, 0],
         [1 / 2, 1 / 2, 1 / 2],
         [1 / 2, -1 / 2, 1 / 2],
         [0, 0, 1]]),
    4: ([[1, 1, 1, 1, 1, 0],
         [0, 1, -1, 2, -2, 0],
         [0, 1, 1, 4, 4, 0],
         [0, 1, -1, 8, -8, 1]],
        [[4, 0, -5, 0, 1, 0],
         [0, -4, -4, 1, 1, 0],
         [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0],
         [0, 2, -1, -2, 1, 0],
         [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0],
         [-1 / 6, -1 / 6, -1 / 6],
         [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6],
         [1 / 24, -1 / 12, 1 / 6],
         [0, 0, 1]]),
}


def matrices(tile: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T, B^T, G) of F(tile x tile, 3 x 3), float64."""
    if tile not in _MATRICES:
        raise ValueError(f"Winograd tile size {tile} is not one of {TILE_SIZES}")
    return tuple(np.array(m, dtype=np.float64) for m in _MATRICES[tile])  # type: ignore[return-value]


def alpha(tile: int) -> int:
    """The input tile's side: tile + 3 - 1."""
    return tile + 2


def transform_weight(weight: np.ndarray, tile: int) -> np.ndarray:
    """OIHW 3x3 weights [O, I, 3, 3] -> U [alpha, alpha, O, I] with U[:, :, o, i] = G w[o, i] G^T (in float64,
    rounded once to the weight's dtype)."""
    _, _, g = matrices(tile)
    u = np.einsum("ak,oikl,bl->aboi", g, weight.astype(np.float64), g)
    return np.ascontiguousarray(u.astype(weight.dtype))


def tiles(size: int, tile: int) -> int:
    """Output tiles along an axis of ``size`` output pixels (the last tile may stick out; it is cropped)."""
    return -(-size // tile)
