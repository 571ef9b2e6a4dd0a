"""Numeric arrays inside router state: plain bytes and JSON, never pickled objects.

A trained router's weights (a classifier's coefficients, an embedder's idf, a factorisation's
model vectors) are part of its state, which is a content-addressed artifact: it must hash the
same on every machine and loading it must never execute code. :class:`ArrayData` holds one
array as its dtype (a short list of plain numeric types), its shape and the base64 of its
little-endian C-order bytes, so the canonical JSON of a state is a pure function of the
numbers, and decoding is a byte copy checked against the declared shape.

This module must never accept object, string or structured dtypes, nor non-finite floats (a
NaN would make two equal models hash differently and poison every score).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ArrayData", "DType"]

DType = Literal["float32", "float64", "int32", "int64"]
_DTYPES: dict[str, np.dtype[Any]] = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
}


class ArrayData(BaseModel):
    """One numeric array as JSON: ``dtype``, ``shape`` and base64 ``data``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    dtype: DType
    shape: list[int] = Field(max_length=8)
    data: str
    """Base64 (standard alphabet, padded) of the little-endian C-order bytes."""

    @model_validator(mode="after")
    def _check_size(self) -> ArrayData:
        if any(n < 0 for n in self.shape):
            raise ValueError(f"array shape {self.shape} has a negative size; fix: re-save it")
        expected = int(np.prod(self.shape, dtype=np.int64)) * _DTYPES[self.dtype].itemsize
        # base64 length is fixed by the byte count: a truncated or padded blob is refused
        # before anything is decoded.
        if len(self.data) != 4 * ((expected + 2) // 3):
            raise ValueError(
                f"array data holds {len(self.data)} base64 characters, not the "
                f"{4 * ((expected + 2) // 3)} a {self.dtype} array of shape {self.shape} needs; "
                "fix: the state is damaged, retrain or restore it"
            )
        return self

    @classmethod
    def of(cls, array: NDArray[Any] | Any, dtype: DType | None = None) -> ArrayData:
        """Encode ``array`` (converted to ``dtype`` when given). Refuses non-numeric dtypes and
        non-finite floats."""
        arr = np.asarray(array)
        name = dtype or str(arr.dtype)
        if name not in _DTYPES:
            raise TypeError(
                f"arrays of dtype {arr.dtype} cannot be router state; fix: convert to one of "
                f"{', '.join(_DTYPES)}"
            )
        arr = np.array(arr, dtype=_DTYPES[name], order="C")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(
                "the array holds NaN or infinite values, which router state refuses; fix: "
                "check the training data and the model's regularisation"
            )
        data = base64.b64encode(arr.tobytes(order="C")).decode("ascii")
        return cls(dtype=name, shape=list(arr.shape), data=data)

    def to_numpy(self) -> NDArray[Any]:
        """The array, read-only, in native byte order."""
        try:
            raw = base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                "array data is not valid base64; fix: the state is damaged, retrain or restore it"
            ) from None
        arr = np.frombuffer(raw, dtype=_DTYPES[self.dtype]).reshape(tuple(self.shape))
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError("array data holds NaN or infinite values; fix: retrain the model")
        out = arr.astype(arr.dtype.newbyteorder("="), copy=False)
        out.flags.writeable = False
        return out
