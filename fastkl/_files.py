"""File input and output for the ``fastkl`` file commands (private).

* :func:`parse_size` reads ``--memory`` values such as ``512MB`` or ``2GiB``.
* :func:`sniff` and :func:`open_input` open an input -- a ``.npy`` file, an ``.npz``
  member or a Zarr array -- as a :class:`Source` that hands out consecutive row
  chunks (slices along the first axis) while holding about one chunk in memory.
* :class:`NpyWriter` streams a ``.npy`` array to a file that appears under its
  name only when complete, or to standard output.
* :class:`Progress` is the one-line progress meter and the final summary line.

No function here ever unpickles: headers are parsed by ``numpy.lib.format`` and
arrays of Python objects are refused.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import secrets
import stat
import struct
import sys
import time
import zipfile
from typing import IO, Any, Callable, Sequence

import numpy as np

_fmt = np.lib.format

#: What an input may be, for error messages.
EXPECTED_FORMATS = "expected .npy, .npz with --key, or a Zarr array"

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first member, or an empty zip
_ZARR_METADATA = (".zarray", ".zgroup", "zarr.json")  # Zarr format 2 array / group, format 3
#: Largest piece decompressed at once from an .npz member, so that zipfile's
#: temporary bytes objects stay small next to a chunk.
_STREAM_PIECE = 4 * 2**20


# --------------------------------------------------------------------------- sizes

_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
}
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """Bytes in a size such as ``"512MB"``, ``"2GiB"``, ``"1.5 GB"`` or ``"100000"``.

    KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB (and a bare K, M, G, T,
    as ``sort -S`` reads them) powers of 1024; units are case-insensitive and a
    plain number is bytes.

    Raises
    ------
    ValueError
        Not a size, an unknown unit, or less than one byte.
    """
    match = _SIZE_RE.fullmatch(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(f"expected a size such as 512MB, 2GiB or 100000 (bytes), got {text!r}")
    value = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if value < 1:
        raise ValueError(f"the size must be at least one byte, got {text!r}")
    return value


def format_bytes(n: float) -> str:
    """``1.5e9`` -> ``"1.50 GB"`` (powers of 1000, as the GB/s figures)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


# --------------------------------------------------------------------------- inputs


class Source:
    """An input array read in row chunks: consecutive slices along its first axis.

    Attributes
    ----------
    name : str
        How errors name the input (the path, with the member for archives).
    shape : tuple of int
    dtype : numpy.dtype
    row_readable : bool
        Whether :meth:`read` works; when False the input is only :meth:`load`-ed whole.
    align : int
        Chunks whose row count is a multiple of this read efficiently (Zarr's chunk rows).
    held_factor : int
        Bytes held in memory while a chunk is in use, in units of the chunk's bytes
        (2 where the reader decompresses into memory of its own before handing it out).
    """

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    row_readable = True
    align = 1
    held_factor = 1

    @property
    def row_bytes(self) -> int:
        """Bytes of one row (one slice along the first axis)."""
        return math.prod(self.shape[1:]) * self.dtype.itemsize

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop``; valid until the next :meth:`read` and only while referenced.

        Chunks are read in order, each starting where the previous one stopped.
        """
        raise NotImplementedError

    def prefetch(self, start: int, stop: int) -> None:
        """Hint that rows ``start:stop`` come next (lets the OS read them ahead)."""

    def load(self) -> np.ndarray:
        """The whole array (memory-mapped where the format allows it)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release files and buffers."""


def _check_dtype(dtype: np.dtype, name: str) -> None:
    if dtype.hasobject:
        raise ValueError(
            f"{name} holds Python objects (a pickled object array); fastkl reads numeric arrays only"
        )


def _read_npy_header(f: IO[bytes], name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the .npy stream at ``f``'s position, never unpickling."""
    try:
        version = _fmt.read_magic(f)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"format version {version[0]}.{version[1]} is not supported")
        # Version 3 differs from 2 only by a UTF-8 header, which numeric dtypes do not need.
        reader = _fmt.read_array_header_1_0 if version == (1, 0) else _fmt.read_array_header_2_0
        shape, fortran, dtype = reader(f)
    except (ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise ValueError(f"{name} is not a valid .npy array: {exc}") from None
    _check_dtype(dtype, name)
    return tuple(shape), bool(fortran) and len(shape) > 1, dtype


def _readinto_exactly(f: IO[bytes], view: memoryview, name: str) -> None:
    """Fill ``view`` from ``f`` (reads may return less than asked)."""
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            raise ValueError(f"{name} is truncated")
        done += got


class _NpyData(Source):
    """A .npy array stored uncompressed at a byte offset of a file (a .npy, or an .npz member).

    C-ordered arrays: each chunk's byte range is memory-mapped on its own and
    unmapped once the chunk is dropped, so mapped pages -- which count in the
    process's resident memory -- never add up beyond one chunk.  2-D
    Fortran-ordered arrays (``np.save(path, a.T)``): each row chunk is read column
    by column into one reused Fortran-ordered buffer.
    """

    def __init__(self, path: str, name: str, base: int, limit: int | None):
        self.path, self.name = path, name
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        try:
            self._file.seek(base)
            self.shape, self._fortran, self.dtype = _read_npy_header(self._file, name)
            self.offset = self._file.tell()
            end = os.fstat(self._file.fileno()).st_size if limit is None else base + limit
            size = math.prod(self.shape) * self.dtype.itemsize
            if self.offset + size > end:
                raise ValueError(
                    f"{name} is truncated: its header promises {size} bytes of data, "
                    f"the file holds {max(end - self.offset, 0)}"
                )
        except BaseException:
            self._file.close()
            raise
        self._buffer: np.ndarray | None = None
        self.row_readable = not self._fortran or len(self.shape) == 2

    def read(self, start: int, stop: int) -> np.ndarray:
        shape = (stop - start,) + self.shape[1:]
        length = (stop - start) * self.row_bytes
        if length == 0:
            return np.empty(shape, self.dtype)
        if self._fortran:
            return self._read_columns(start, stop)
        begin = self.offset + start * self.row_bytes
        aligned = begin - begin % mmap.ALLOCATIONGRANULARITY  # mmap offsets must be aligned
        # No reference to the map is kept: when the caller drops the array, the
        # map is closed and its pages leave the resident set.
        mapped = mmap.mmap(self._file.fileno(), begin + length - aligned, access=mmap.ACCESS_READ,
                           offset=aligned)
        flat = np.frombuffer(mapped, dtype=self.dtype, count=length // self.dtype.itemsize,
                             offset=begin - aligned)
        return flat.reshape(shape)

    def _read_columns(self, start: int, stop: int) -> np.ndarray:
        n_rows, n_cols = self.shape
        rows = stop - start
        if self._buffer is None or self._buffer.shape[0] < rows:
            self._buffer = np.empty((rows, n_cols), dtype=self.dtype, order="F")
        view = self._buffer[:rows]  # column j is contiguous: rows items
        item = self.dtype.itemsize
        for j in range(n_cols):
            self._file.seek(self.offset + (j * n_rows + start) * item)
            _readinto_exactly(self._file, memoryview(view[:, j]).cast("B"), self.name)
        return view

    def prefetch(self, start: int, stop: int) -> None:
        # Asks the kernel to start reading the next chunk from disk while this one
        # is computed; pages read ahead sit in the page cache, not in our memory.
        if hasattr(os, "posix_fadvise") and not self._fortran and stop > start:
            os.posix_fadvise(self._file.fileno(), self.offset + start * self.row_bytes,
                             (stop - start) * self.row_bytes, os.POSIX_FADV_WILLNEED)

    def load(self) -> np.ndarray:
        if math.prod(self.shape) == 0:
            return np.empty(self.shape, self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape,
                         order="F" if self._fortran else "C")

    def close(self) -> None:
        self._buffer = None
        self._file.close()


class _NpyStream(Source):
    """An .npz member stored compressed: decompressed in order into one reused buffer.

    Fortran-ordered members cannot be read by rows this way; they are only loaded whole.
    """

    def __init__(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str):
        self._archive, self._info, self.name = archive, info, name
        self._stream = archive.open(info)
        self.shape, fortran, self.dtype = _read_npy_header(self._stream, name)
        self.row_readable = not fortran
        self._next = 0
        self._buffer: np.ndarray | None = None

    def read(self, start: int, stop: int) -> np.ndarray:
        if start != self._next:
            raise RuntimeError(f"{self.name}: rows must be read in order ({start} after {self._next})")
        rows = stop - start
        if self._buffer is None or self._buffer.shape[0] < rows:
            self._buffer = np.empty((rows,) + self.shape[1:], dtype=self.dtype)
        view = self._buffer[:rows]
        data = memoryview(view.reshape(-1)).cast("B")
        for piece in range(0, len(data), _STREAM_PIECE):
            _readinto_exactly(self._stream, data[piece:piece + _STREAM_PIECE], self.name)
        self._next = stop
        return view

    def load(self) -> np.ndarray:
        with self._archive.open(self._info) as stream:
            try:
                return _fmt.read_array(stream, allow_pickle=False)
            except (ValueError, EOFError) as exc:
                raise ValueError(f"{self.name} is not a valid .npy array: {exc}") from None

    def close(self) -> None:
        self._buffer = None
        self._stream.close()
        self._archive.close()


class _ZarrSource(Source):
    """A Zarr array, read through zarr (which decompresses whole Zarr chunks)."""

    held_factor = 2  # the slice zarr returns, and the Zarr chunks it decompressed to fill it

    def __init__(self, array: Any, name: str):
        self._array, self.name = array, name
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)
        _check_dtype(self.dtype, name)
        chunks = getattr(array, "chunks", None)
        self.align = int(chunks[0]) if chunks and len(self.shape) > 0 and chunks[0] else 1

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self._array[start:stop])

    def load(self) -> np.ndarray:
        return np.asarray(self._array[...])


def sniff(path: str) -> str:
    """The format of ``path``: ``"npy"``, ``"npz"`` or ``"zarr"``.

    Raises
    ------
    OSError
        The file does not exist or cannot be read.
    ValueError
        Anything else, with a message naming the formats expected.
    """
    if os.path.isdir(path):
        if any(os.path.exists(os.path.join(path, m)) for m in _ZARR_METADATA):
            return "zarr"
        raise ValueError(f"{path} is a folder but not a Zarr array or group ({EXPECTED_FORMATS})")
    with open(path, "rb") as f:
        magic = f.read(len(_NPY_MAGIC))
    if magic == _NPY_MAGIC:
        return "npy"
    if magic[:4] in _ZIP_MAGICS:
        return "npz"
    raise ValueError(f"{path} is not a .npy file ({EXPECTED_FORMATS})")


def open_input(path: str, key: str | None = None, kind: str | None = None) -> Source:
    """Open ``path`` (of format ``kind``, sniffed when None) as a :class:`Source`.

    ``key`` names the member of an ``.npz`` archive or the array inside a Zarr
    group; it is required when an archive holds several arrays, and the error
    then lists them.
    """
    kind = kind or sniff(path)
    if kind == "npy":
        return _NpyData(path, path, 0, None)
    if kind == "npz":
        return _open_npz(path, key)
    return _open_zarr(path, key)


def _choose(path: str, names: Sequence[str], key: str | None) -> str:
    """The array of ``names`` that ``key`` selects (the only one when None), with errors listing them."""
    if not names:
        raise ValueError(f"{path} holds no arrays")
    listed = ", ".join(names)
    if key is None:
        if len(names) == 1:
            return names[0]
        raise ValueError(f"{path} holds {len(names)} arrays ({listed}); choose one with --key")
    if key not in names:
        raise ValueError(f"{path} has no array {key!r} (it holds: {listed})")
    return key


def _open_npz(path: str, key: str | None) -> Source:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise ValueError(f"{path} is not a valid .npz archive: {exc}") from None
    try:
        members = {i.filename[:-4]: i for i in archive.infolist() if i.filename.endswith(".npy")}
        wanted = key[:-4] if key is not None and key.endswith(".npy") and key not in members else key
        member = _choose(path, list(members), wanted)
        info = members[member]
        name = f"{path}[{member}]"
        if info.flag_bits & 0x1:
            raise ValueError(f"{name} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED:
            return _NpyStream(archive, info, name)
        # A stored member is a plain .npy at a known offset: read it like one.
        offset = _member_data_offset(archive, info)
        archive.close()
        return _NpyData(path, name, offset, info.file_size)
    except BaseException:
        archive.close()
        raise


def _member_data_offset(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """Where a member's data starts: after its *local* header, whose extra field
    (numpy writes a zip64 one) may differ from the central directory's."""
    fp = archive.fp
    assert fp is not None
    fp.seek(info.header_offset)
    local = fp.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise ValueError(f"{archive.filename}: bad local header for member {info.filename}")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _open_zarr(path: str, key: str | None) -> Source:
    try:
        import zarr
    except ImportError:
        raise ImportError(f"{path} is a Zarr store, and reading it needs the zarr package "
                          "(pip install zarr)") from None
    try:
        node = zarr.open(path, mode="r")
    except Exception as exc:  # zarr raises many types for an unreadable store
        raise ValueError(f"{path} is not a readable Zarr array or group: {exc}") from None
    if not hasattr(node, "array_keys"):  # a bare array
        if key is not None:
            raise ValueError(f"{path} is a Zarr array, not a group; it takes no --key")
        return _ZarrSource(node, path)
    arrays = sorted(node.array_keys())
    if key is None:
        key = _choose(path, arrays, None)
    try:
        found = node[key]  # also a nested path such as "eval/logits"
    except KeyError:
        found = None
    if found is None or hasattr(found, "array_keys"):
        what = "is a group, not an array" if found is not None else "does not exist"
        raise ValueError(f"{path}[{key}] {what} (the group's arrays: {', '.join(arrays) or 'none'})")
    return _ZarrSource(found, f"{path}[{key}]")


# --------------------------------------------------------------------------- output


class NpyWriter:
    """Stream one ``.npy`` array to a file, or to standard output for ``"-"``.

    A file is written under a temporary name in its folder, created with the
    permissions a plain ``open(path, "w")`` would give (``0o666`` less the umask,
    or the mode of the file it replaces), and renamed over ``path`` by
    :meth:`commit`, so it appears only when complete; :meth:`abort` removes it.
    Standard output gets the header and data as they come.

    Use as a context manager: commit on success, abort on an exception.  The
    temporary file is created on entry, so a bad output folder fails before any
    computation.
    """

    def __init__(self, target: str):
        self.target = target
        self._file: IO[bytes] | None = None
        self._tmp: str | None = None
        self._remaining: int | None = None

    def __enter__(self) -> NpyWriter:
        if self.target == "-":
            self._file = _binary_stdout()
        else:
            self._file, self._tmp = _create_beside(self.target)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def begin(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        """Write the header of a C-ordered array of ``shape`` and ``dtype``."""
        assert self._file is not None and self._remaining is None
        header = {"descr": _fmt.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
        try:
            _fmt.write_array_header_1_0(self._file, header)
        except ValueError:  # a header over 64 KiB (a huge shape tuple) needs format 2.0
            _fmt.write_array_header_2_0(self._file, header)
        self._remaining = math.prod(shape)

    def write(self, values: np.ndarray) -> None:
        """Append ``values`` (C order) to the data."""
        assert self._file is not None and self._remaining is not None
        flat = np.ascontiguousarray(values).reshape(-1)
        self._remaining -= flat.size
        if flat.size:
            self._file.write(memoryview(flat).cast("B"))

    def write_array(self, arr: np.ndarray) -> None:
        """Write a whole array: header and data."""
        arr = np.asarray(arr)
        self.begin(arr.shape, arr.dtype)
        self.write(arr)

    def commit(self) -> None:
        if self._file is None:
            return
        assert self._remaining == 0, "the array was not written completely"
        f, self._file = self._file, None
        if self._tmp is None:
            f.flush()  # standard output stays open
            return
        f.close()
        os.replace(self._tmp, self.target)
        self._tmp = None

    def abort(self) -> None:
        f, self._file = self._file, None
        if self._tmp is None:
            return
        if f is not None:
            f.close()
        try:
            os.remove(self._tmp)
        except FileNotFoundError:
            pass
        self._tmp = None


def _binary_stdout() -> IO[bytes]:
    stdout = sys.stdout
    if stdout is None or not hasattr(stdout, "buffer"):
        raise ValueError("standard output does not accept binary data; pass -o FILE")
    if stdout.isatty():
        raise ValueError("refusing to write binary .npy data to a terminal; "
                         "redirect standard output or pass -o FILE")
    stdout.flush()  # text written earlier goes first
    return stdout.buffer


def _create_beside(path: str) -> tuple[IO[bytes], str]:
    """Create a temporary file in ``path``'s folder, with the mode a plain write would give."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"output folder {folder} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"output {path} is a folder")
    mode = 0o666  # the kernel applies the umask, as for open(path, "w")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)  # overwriting keeps the file's mode
        replacing = True
    except OSError:
        replacing = False
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".fastkl-{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, mode)
            break
        except FileExistsError:
            continue
        except PermissionError:
            raise PermissionError(f"cannot write to output folder {folder}: permission denied") from None
    else:  # pragma: no cover - 100 random names taken
        raise FileExistsError(f"cannot create a temporary file in {folder}")
    if replacing and hasattr(os, "fchmod"):
        os.fchmod(fd, mode)  # os.open's mode was filtered by the umask
    return os.fdopen(fd, "wb"), tmp


# --------------------------------------------------------------------------- progress


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """A one-line progress meter on stderr, and a summary line when done.

    Shows rows done / total, throughput in GB/s of input and the time left,
    redrawn at most every ``interval`` seconds; :meth:`finish` replaces it by a
    summary (rows, bytes, seconds, GB/s of the chunk loop alone, chunks) ending
    with a newline, :meth:`clear` erases it before an error message.  Disabled,
    every method does nothing.
    """

    def __init__(self, label: str, total_rows: int, row_bytes: int, *, enabled: bool,
                 stream: IO[str] | None = None, clock: Callable[[], float] = time.monotonic,
                 interval: float = 0.1):
        self.label, self.total, self.row_bytes = label, total_rows, row_bytes
        self.enabled, self.interval, self._clock = enabled, interval, clock
        self._stream = stream if stream is not None else sys.stderr
        self._start = self._last = clock()
        self._width = 0
        self.done = 0

    def start(self) -> None:
        """Start the clock (after opening files: start-up is not throughput)."""
        self._start = self._last = self._clock()

    @property
    def elapsed(self) -> float:
        return self._clock() - self._start

    def update(self, done_rows: int) -> None:
        self.done = done_rows
        if not self.enabled:
            return
        now = self._clock()
        if now - self._last < self.interval:
            return
        self._last = now
        seconds = now - self._start
        rate = done_rows / seconds if seconds > 0 else 0.0
        left = _clock((self.total - done_rows) / rate) if rate > 0 else "-:--"
        pct = 100.0 * done_rows / self.total if self.total else 100.0
        gbps = done_rows * self.row_bytes / seconds / 1e9 if seconds > 0 else 0.0
        self._draw(f"{self.label}: {done_rows:,}/{self.total:,} rows {pct:5.1f}%  {gbps:.2f} GB/s  {left} left")

    def finish(self, detail: str = "") -> None:
        """Replace the meter by the summary line."""
        if not self.enabled:
            return
        seconds = self.elapsed
        size = self.done * self.row_bytes
        gbps = f"{size / seconds / 1e9:.2f} GB/s" if seconds > 0 else "- GB/s"
        text = (f"{self.label}: {self.done:,} rows, {format_bytes(size)} in {seconds:.2f} s, {gbps}"
                + (f" ({detail})" if detail else ""))
        self._draw(text)
        self._write("\n")
        self._width = 0

    def clear(self) -> None:
        """Erase the meter (before an error message)."""
        if self.enabled and self._width:
            self._write("\r" + " " * self._width + "\r")
            self._width = 0

    def _draw(self, text: str) -> None:
        pad = max(self._width - len(text), 0)  # cover the longer line drawn before
        self._write("\r" + text + " " * pad)
        self._width = len(text)

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # a closed stderr must not stop the computation
            self.enabled = False
