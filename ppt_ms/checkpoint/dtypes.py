"""Element types: widening half precision to float32."""
import numpy as np


def bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 values given as their uint16 bit patterns -> float32 (exact:
    bfloat16 is the upper half of a float32)."""
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def widen_half(array: np.ndarray) -> np.ndarray:
    """float16 -> float32 (exact); every other dtype is returned unchanged."""
    if array.dtype == np.float16:
        return array.astype(np.float32)
    return array
