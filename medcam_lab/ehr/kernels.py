"""Compiled kernels of the discretizer (numba; compiled on first use and cached on disk).

- :func:`parse_decimal_cells` reads plain decimal numbers straight from Arrow string buffers, and
  :func:`match_known_cells` matches category texts there;
- :func:`record_last` keeps, per bin and channel, the value of the last row that falls in the bin;
- :func:`write_bins` imputes the unobserved bins and writes values, one-hots and masks, bin by bin.

:mod:`medcam_lab.ehr.discretizer` prepares their inputs with NumPy/Arrow and checks every error case before
calling them; this module is imported only when a discretizer runs.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

IMPUTE_CODES = {"zero": 0, "normal_value": 1, "previous": 2, "next": 3}
"""Integer code of each impute strategy, as :func:`write_bins` takes it."""

NOT_MEASURED, PARSED, NEEDS_PYTHON, INVALID = 0, 1, 2, 3
"""Status of a cell: empty or missing; read (its value is set); left to Python; not a valid value."""

_EXACT_POWERS_OF_TEN = np.array([10.0**k for k in range(23)])  # 1e0 .. 1e22 are exact doubles


@numba.njit(cache=True, nogil=True, inline="always")
def _is_null(validity, bit):
    return validity.shape[0] > 0 and not (validity[bit >> 3] >> (bit & 7)) & 1


@numba.njit(cache=True, nogil=True)
def _parse_decimal_kernel(offsets, data, validity, bit_offset, powers, values, status):
    for i in range(values.shape[0]):
        p, end = offsets[i], offsets[i + 1]
        if p == end or _is_null(validity, bit_offset + i):
            continue  # status stays NOT_MEASURED
        negative = False
        if data[p] == 43 or data[p] == 45:  # '+' or '-'
            negative = data[p] == 45
            p += 1
        mantissa, digits, decimals, dot, simple = 0, 0, 0, False, True
        while p < end:
            ch = data[p]
            if 48 <= ch <= 57:
                digits += 1
                if digits > 18:  # could overflow int64: leave to Python
                    simple = False
                    break
                mantissa = mantissa * 10 + (ch - 48)
                if dot:
                    decimals += 1
            elif ch == 46 and not dot:  # '.'
                dot = True
            else:
                simple = False
                break
            p += 1
        if not simple or digits == 0 or mantissa > 9007199254740992 or decimals > 22:
            status[i] = 2
            continue
        # mantissa (<= 2**53) and 10**decimals (<= 1e22) are exact doubles, so one IEEE division is the
        # correctly rounded value of the decimal text: the same double as Python's float(text)
        value = np.float64(mantissa) / powers[decimals]
        values[i] = -value if negative else value
        status[i] = 1


@numba.njit(cache=True, nogil=True)
def _match_known_kernel(offsets, data, validity, bit_offset, known_offsets, known_data, known_values, first_of_length,
                        values, status):
    longest = first_of_length.shape[0] - 2
    for i in range(values.shape[0]):
        start, end = offsets[i], offsets[i + 1]
        size = end - start
        if size == 0 or _is_null(validity, bit_offset + i):
            continue
        status[i] = 2
        if size > longest:
            continue
        for j in range(first_of_length[size], first_of_length[size + 1]):  # known texts of this length
            k0 = known_offsets[j]
            same = True
            for t in range(size):
                if data[start + t] != known_data[k0 + t]:
                    same = False
                    break
            if same:
                values[i] = known_values[j]
                status[i] = 1
                break


def _chunk_buffers(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(offsets, data, validity)`` of a string or large_string array as NumPy views (validity empty when
    the array has no null bitmap; offsets start at the array's own offset)."""
    if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
        raise TypeError(f"expected an Arrow string or large_string array, got {chunk.type}")
    validity_buffer, offset_buffer, data_buffer = chunk.buffers()
    offset_type = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(offset_buffer, dtype=offset_type)[chunk.offset : chunk.offset + len(chunk) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(1, np.uint8)
    validity = np.frombuffer(validity_buffer, dtype=np.uint8) if validity_buffer is not None else np.zeros(0, np.uint8)
    return offsets, data, validity


def _run_on_chunks(cells: pa.ChunkedArray, kernel, *args) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    values = np.full(len(cells), np.nan)
    status = np.zeros(len(cells), dtype=np.int8)
    start = 0
    for chunk in cells.chunks:
        size = len(chunk)
        if size:
            offsets, data, validity = _chunk_buffers(chunk)
            end = start + size
            kernel(offsets, data, validity, chunk.offset, *args, values[start:end], status[start:end])
        start += size
    return values, status


def parse_decimal_cells(cells: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Parse text cells of the form ``[+-]digits[.digits]`` exactly as Python's ``float`` would.

    Cells with up to 18 digits and a mantissa up to 2**53 are parsed here; every other non-empty cell
    (exponents, whitespace, ``nan``, words, ...) gets status :data:`NEEDS_PYTHON` and is left to the
    caller; empty and missing cells get :data:`NOT_MEASURED`.

    Shape:
        cells: (n,) string or large_string; returns (n,) float64 values (NaN unless parsed) and (n,) int8
        status.
    """
    return _run_on_chunks(cells, _parse_decimal_kernel, _EXACT_POWERS_OF_TEN)


def match_known_cells(cells: pa.ChunkedArray, known: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Value of each cell whose text equals (byte for byte) a key of ``known``.

    Other non-empty cells get status :data:`NEEDS_PYTHON`, empty and missing ones :data:`NOT_MEASURED`.

    Shape:
        cells: (n,) string or large_string; returns (n,) float64 values (NaN unless matched), (n,) int8 status.
    """
    encoded = sorted((text.encode(), value) for text, value in known.items() if text)  # grouped by length below
    encoded.sort(key=lambda item: len(item[0]))
    lengths = np.array([len(text) for text, _ in encoded], dtype=np.int64)
    known_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    known_data = np.frombuffer(b"".join(text for text, _ in encoded) or b"\0", dtype=np.uint8)
    known_values = np.array([value for _, value in encoded], dtype=np.float64)
    # known texts of length L are entries first_of_length[L] : first_of_length[L + 1]
    first_of_length = np.searchsorted(lengths, np.arange((lengths.max() if lengths.size else 0) + 2)).astype(np.int64)
    return _run_on_chunks(cells, _match_known_kernel, known_offsets, known_data, known_values, first_of_length)


@numba.njit(cache=True, nogil=True)
def record_last(status, row_bin, values, channel, last_value, observed):
    """For every row with status :data:`PARSED` and a bin, write its value at ``(bin, channel)``.

    Rows are visited in table order, so the last row of a bin wins, even where hours decrease by less
    than ``eps`` at a bin boundary. (A narrow (bins, channels) matrix, not the wide output, keeps these
    scattered writes in cache; :func:`write_bins` then fills the output row by row.)

    Shape:
        status, row_bin, values: (n_rows,) (row_bin -1 = after the episode's end);
        last_value: (total_bins + 1, C) float32; observed: (total_bins + 1, C) bool (the last row is spare).
    """
    spare = last_value.shape[0] - 1  # rows that are not recorded write to this spare last bin (no branch)
    for r in range(status.shape[0]):
        b = row_bin[r]
        b = b if status[r] == 1 and b >= 0 else spare
        last_value[b, channel] = values[r]
        observed[b, channel] = True


@numba.njit(cache=True, nogil=True)
def write_bins(last_value, observed, offsets, impute, normal, categorical, begin, mask_begin, out):
    """Impute unobserved bins per episode and write every channel of every bin into ``out``.

    ``impute`` (:data:`IMPUTE_CODES`): zero leaves the cell empty; normal_value writes ``normal``;
    previous / next carry the value of the nearest earlier / later observed bin of the same episode, else
    ``normal``. A categorical channel's value is the index of its hot column after ``begin``. With
    ``mask_begin >= 0`` the observed flags are written to the columns from ``mask_begin``.

    Shape:
        last_value (float32), observed: (total_bins, C); offsets: (E + 1,); normal, categorical, begin: (C,);
        out: (total_bins, F) float32, zeros on entry.
    """
    n_channels = last_value.shape[1]
    carry = np.zeros(n_channels, dtype=np.float32)
    has_carry = np.zeros(n_channels, dtype=np.bool_)
    backwards = impute == 3
    for e in range(offsets.shape[0] - 1):
        lo, hi = offsets[e], offsets[e + 1]
        has_carry[:] = False
        for i in range(hi - lo):
            b = hi - 1 - i if backwards else lo + i
            for c in range(n_channels):
                if observed[b, c]:
                    v = last_value[b, c]
                    carry[c] = v
                    has_carry[c] = True
                    if mask_begin >= 0:
                        out[b, mask_begin + c] = 1.0
                elif impute == 0:
                    continue
                elif impute >= 2 and has_carry[c]:
                    v = carry[c]
                else:
                    v = np.float32(normal[c])
                if categorical[c]:
                    out[b, begin[c] + np.int64(v)] = 1.0
                else:
                    out[b, begin[c]] = v
