"""The discretizer's compiled kernels against Python: number parsing bit for bit, slices and chunks."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from medcam_lab.ehr import kernels

TRICKY = [
    "0", "-0", "-0.0", "+5", "007", "1.", ".5", "-.5", "80.3", "0.1", "0.3", "1.0000000000000002",
    "9007199254740992", "9007199254740993", "123456789012345678", "1234567890123456789",
    "0.0000000000000000000001", "0.00000000000000000000001", "1e5", "1E-3", " 80", "80 ", "nan", "-inf",
    "Infinity", "1_000", "1,5", ".", "+", "-", "ERROR", "___", "\u0663", "12.5.1", "--1", "0x10",
]


def _python(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _check(texts: list[str | None], cells: pa.ChunkedArray) -> None:
    values, status = kernels.parse_decimal_cells(cells)
    for text, value, state in zip(texts, values, status, strict=True):
        if text is None or text == "":
            assert state == kernels.NOT_MEASURED, repr(text)
        elif state == kernels.PARSED:
            want = _python(text)
            assert want is not None and np.float64(want).tobytes() == np.float64(value).tobytes(), repr(text)
        else:
            assert state == kernels.NEEDS_PYTHON, repr(text)


@pytest.mark.parametrize("arrow_type", [pa.string(), pa.large_string()])
def test_parsed_cells_equal_python_float_bit_for_bit(arrow_type: pa.DataType) -> None:
    rng = np.random.default_rng(0)
    texts: list[str | None] = [*TRICKY, "", None]
    for _ in range(20_000):
        int_digits, frac_digits = rng.integers(0, 12), rng.integers(0, 12)
        whole = "".join(rng.choice(list("0123456789"), int_digits))
        frac = "".join(rng.choice(list("0123456789"), frac_digits))
        sign = rng.choice(["", "-", "+"], p=[0.8, 0.15, 0.05])
        texts.append(f"{sign}{whole}.{frac}" if rng.random() < 0.7 else f"{sign}{whole}{frac}")
    texts += [repr(float(x)) for x in rng.normal(80, 30, 5_000)]
    _check(texts, pa.chunked_array([pa.array(texts, type=arrow_type)]))
    values, status = kernels.parse_decimal_cells(pa.chunked_array([pa.array(texts, type=arrow_type)]))
    plain = [t for t, s in zip(texts, status, strict=True) if s == kernels.PARSED]
    assert len(plain) > 19_000  # the kernel, not Python, handles the plain decimals


def test_slices_and_several_chunks() -> None:
    texts = ["1.5", "", None, "x", "-2", "3.25", "nan", "7"] * 5
    whole = pa.array(texts)
    chunks = pa.chunked_array([whole.slice(3, 11), whole.slice(14, 0), whole.slice(14, 26)])
    _check(texts[3:40], chunks)
    values, status = kernels.parse_decimal_cells(chunks)
    assert values[1] == -2.0 and status[3] == kernels.NEEDS_PYTHON and len(values) == 37


def test_all_empty_column_has_no_data_buffer() -> None:
    cells = pa.chunked_array([pa.array(["", None, ""])])
    values, status = kernels.parse_decimal_cells(cells)
    assert (status == kernels.NOT_MEASURED).all() and np.isnan(values).all()


def test_match_known_cells_byte_for_byte() -> None:
    known = {"To Pain": 0.0, "4 Spontaneously": 3.0, "": 9.0}  # an empty key never matches: empty = not measured
    texts = ["To Pain", "to pain", "4 Spontaneously", "4 Spontaneously ", "", None, "To Pai", "To Painn"] * 3
    whole = pa.array(texts, type=pa.large_string())
    values, status = kernels.match_known_cells(pa.chunked_array([whole.slice(0, 5), whole.slice(5)]), known)
    for text, value, state in zip(texts, values, status, strict=True):
        if text in (None, ""):
            assert state == kernels.NOT_MEASURED
        elif text in known:
            assert state == kernels.PARSED and value == known[text]
        else:
            assert state == kernels.NEEDS_PYTHON and np.isnan(value)


def test_other_arrow_types_are_refused() -> None:
    with pytest.raises(TypeError, match="string or large_string"):
        kernels.parse_decimal_cells(pa.chunked_array([pa.array([b"1.5"], type=pa.binary())]))
