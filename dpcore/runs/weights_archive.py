"""A run's model weights as the store keeps them: an ``.npz`` archive written once, read back within bounds.

The blob is data from a file anyone may have replaced, so it is read as untrusted: each member's
``.npy`` header is parsed from a few kilobytes before any array is allocated, its shape must be the
one the model expects (or, without a model, the total stays under ``MAX_STORED_WEIGHT_VALUES``), its
dtype a plain float (never pickled objects), and only the bytes that shape needs are inflated, so a
header declaring a terabyte or a small blob inflating to gigabytes costs a message, not the memory.
Non-finite weights are refused. Every refusal is an ``AuditError`` naming the run.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Sequence
from typing import Optional

import numpy as np

from dpcore.audit.report import AuditError
from dpcore.safe_io import quote

# Without the model's own shapes, the most values a stored archive may declare: about four times the
# largest model here (the ScatterNet CNN head on 28x28 images), 200 MB as float32.
MAX_STORED_WEIGHT_VALUES = 50_000_000
# An .npy header is a short Python literal; NumPy itself refuses one over 10,000 bytes.
MAX_NPY_HEADER_BYTES = 10_000
# What an archive holds besides the arrays' bytes: per member, its zip entry and .npy header.
MEMBER_OVERHEAD_BYTES = 1024 + MAX_NPY_HEADER_BYTES


def weights_blob(weights: Sequence[np.ndarray]) -> bytes:
    """Model weights as an ``.npz`` archive (arrays arr_0, arr_1, ... in ``get_weights()`` order)."""
    buffer = io.BytesIO()
    np.savez(buffer, *[np.asarray(w) for w in weights])
    return buffer.getvalue()


def max_blob_bytes(expected_shapes: Optional[Sequence[tuple[int, ...]]]) -> int:
    """The largest archive that can hold weights of ``expected_shapes`` (float64 at most); a bigger blob is refused unread."""
    if expected_shapes is None:
        return MAX_STORED_WEIGHT_VALUES * 8 + 64 * MEMBER_OVERHEAD_BYTES
    return sum(math.prod(shape) for shape in expected_shapes) * 8 + (len(expected_shapes) + 1) * MEMBER_OVERHEAD_BYTES


def check_blob_size(size: int, *, run_id: int, expected_shapes: Optional[Sequence[tuple[int, ...]]]) -> None:
    """Refuse an archive of ``size`` bytes when it is larger than weights of ``expected_shapes`` can be."""
    if size > max_blob_bytes(expected_shapes):
        raise AuditError(
            f"run {run_id}'s stored weights take {size:,} bytes, more than its model's weights can", allowed=_ALLOWED
        )


def read_weights(
    blob: bytes, *, run_id: int, expected_shapes: Optional[Sequence[tuple[int, ...]]] = None
) -> list[np.ndarray]:
    """The arrays of a stored archive, checked member by member before each is allocated.

    ``expected_shapes``: the model's weight shapes, which the archive must match exactly; None
    checks only the total against ``MAX_STORED_WEIGHT_VALUES``.
    """
    check_blob_size(len(blob), run_id=run_id, expected_shapes=expected_shapes)
    what = f"run {run_id}'s stored weights"
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise AuditError(f"{what} are not a weights archive ({_reason(exc)})", allowed=_ALLOWED) from None
    with archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        wanted = [f"arr_{i}.npy" for i in range(len(infos))]
        if names != wanted:
            raise AuditError(f"{what} hold members {quote(names)}, not arrays arr_0, arr_1, ...", allowed=_ALLOWED)
        if expected_shapes is not None and len(infos) > len(expected_shapes):
            raise AuditError(
                f"{what} hold {_arrays(len(infos))}; its model has {len(expected_shapes)}", allowed=_ALLOWED
            )
        declared = 0
        arrays = []
        for index, info in enumerate(infos):
            expected = None if expected_shapes is None else tuple(expected_shapes[index])
            try:
                array, values = _read_member(
                    archive, info, expected=expected, budget=MAX_STORED_WEIGHT_VALUES - declared
                )
            except _Refused as exc:
                raise AuditError(f"{what}: arr_{index} {exc}", allowed=_ALLOWED) from None
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError) as exc:
                raise AuditError(f"{what}: arr_{index} cannot be read ({_reason(exc)})", allowed=_ALLOWED) from None
            declared += values
            arrays.append(array)
    if expected_shapes is not None and len(arrays) != len(expected_shapes):
        raise AuditError(f"{what} hold {_arrays(len(arrays))}; its model has {len(expected_shapes)}", allowed=_ALLOWED)
    return arrays


_ALLOWED = "the weights its run saved; delete the run, or train its config again and audit the new run"


class _Refused(Exception):
    """A member that is not what a model's weights are."""


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, expected: Optional[tuple[int, ...]], budget: int
) -> tuple[np.ndarray, int]:
    """One member's array (and its number of values), read only after its header has passed."""
    with archive.open(info) as member:
        head = member.read(MAX_NPY_HEADER_BYTES + 16)
        prefix = io.BytesIO(head)
        try:
            version = np.lib.format.read_magic(prefix)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(prefix)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(prefix)
            else:
                raise _Refused(f"is in .npy format version {version}")
        except (ValueError, EOFError, SyntaxError) as exc:
            raise _Refused(f"has no readable .npy header ({_reason(exc)})") from None
        if dtype.hasobject:
            raise _Refused("holds Python objects (a pickle), which are never loaded")
        if dtype.kind != "f" or dtype.itemsize not in (4, 8):
            raise _Refused(f"holds {quote(str(dtype))} values, not float32 or float64 weights")
        shape = tuple(int(d) for d in shape)
        if expected is not None and shape != expected:
            raise _Refused(f"has shape {quote(shape)}; the model's weight there has shape {quote(expected)}")
        values = math.prod(shape)
        if values > budget:
            raise _Refused(f"declares {values:,} values, more than any model here has ({MAX_STORED_WEIGHT_VALUES:,})")
        offset = prefix.tell()
        size = values * dtype.itemsize
        if info.file_size != offset + size:
            raise _Refused(f"declares {info.file_size:,} bytes where its header says {offset + size:,}")
        data = head[offset:] + member.read(max(0, size - (len(head) - offset)))
        if len(data) != size or member.read(1):
            raise _Refused(f"holds {len(data):,} bytes of values where its header says {size:,}")
    array = np.frombuffer(data, dtype=dtype)
    array = array.reshape(shape, order="F" if fortran else "C")
    if not np.isfinite(array).all():
        raise _Refused("holds NaN or infinite weights")
    return array, values


def _arrays(count: int) -> str:
    return f"{count} array" + ("" if count == 1 else "s")


def _reason(exc: BaseException) -> str:
    return quote(str(exc) or type(exc).__name__, limit=80)
