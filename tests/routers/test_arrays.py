"""Router state arrays: exact round trips, and damaged or unsafe arrays refused."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from pydantic import ValidationError

from routers._arrays import ArrayData
from traces import hash_value

_dtypes = st.sampled_from(["float32", "float64", "int32", "int64"])


@given(
    _dtypes.flatmap(
        lambda d: arrays(
            np.dtype(d),
            array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
            elements={"allow_nan": False, "allow_infinity": False} if d[0] == "f" else None,
        )
    )
)
def test_round_trip_is_exact_and_survives_json(arr: np.ndarray) -> None:
    data = ArrayData.of(arr)
    back = ArrayData.model_validate_json(data.model_dump_json()).to_numpy()
    assert back.dtype == arr.dtype
    assert back.shape == arr.shape
    assert back.tobytes() == np.ascontiguousarray(arr).tobytes()
    assert not back.flags.writeable
    # Same numbers, same hash: a state's version does not depend on memory layout.
    assert hash_value(ArrayData.of(np.array(arr, order="F"))) == hash_value(data)


def test_big_endian_input_is_stored_little_endian() -> None:
    arr = np.arange(6, dtype=">f4").reshape(2, 3)
    assert ArrayData.of(arr, dtype="float32") == ArrayData.of(arr.astype("<f4"))


@pytest.mark.parametrize("bad", [np.array([1.0, np.nan]), np.array([np.inf], np.float32)])
def test_non_finite_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="NaN or infinite"):
        ArrayData.of(bad)


@pytest.mark.parametrize("bad", [np.array(["a"]), np.array([object()]), np.array([True])])
def test_non_numeric_dtypes_refused(bad: np.ndarray) -> None:
    with pytest.raises(TypeError, match="cannot be router state"):
        ArrayData.of(bad)


def test_truncated_or_mis_shaped_data_refused_before_decoding() -> None:
    good = ArrayData.of(np.arange(4, dtype=np.float32)).model_dump()
    with pytest.raises(ValidationError, match="base64 characters"):
        ArrayData.model_validate({**good, "data": good["data"][:-4]})
    with pytest.raises(ValidationError, match="base64 characters"):
        ArrayData.model_validate({**good, "shape": [5]})
    with pytest.raises(ValidationError):
        ArrayData.model_validate({**good, "dtype": "object"})


def test_invalid_base64_and_nan_bytes_refused_on_decode() -> None:
    good = ArrayData.of(np.arange(4, dtype=np.float32)).model_dump()
    with pytest.raises(ValueError, match="not valid base64"):
        ArrayData.model_validate({**good, "data": "!" * len(good["data"])}).to_numpy()
    # Bytes that decode to NaN are refused as well (a damaged or hostile state).
    raw = np.full(4, np.nan, np.float32).tobytes()
    hostile = {**good, "data": base64.b64encode(raw).decode()}
    with pytest.raises(ValueError, match="NaN"):
        ArrayData.model_validate(hostile).to_numpy()
