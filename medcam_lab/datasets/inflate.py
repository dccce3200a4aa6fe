"""A gzip file inflated by ISA-L in a background thread, read as a plain binary stream.

The reader thread stays up to ``queue_blocks`` blocks ahead of the consumer, so inflation overlaps with
the CSV parsing that consumes the text (ISA-L releases the GIL while it inflates). Memory is bounded by
``queue_blocks * block_size`` bytes. An error in the thread (a truncated or corrupt file) is raised by
the next ``read`` of the consumer, never swallowed.
"""

from __future__ import annotations

import io
import queue
import threading
from pathlib import Path

from isal import igzip

_END = object()


class ThreadedGzipReader(io.RawIOBase):
    """Read-only raw binary stream of the inflated content of ``path`` (see :func:`open_gzip_threaded`).

    Args:
        path: A ``.gz`` file (one or more gzip members).
        block_size: Bytes inflated per step of the reader thread.
        queue_blocks: Blocks the thread may hold ready ahead of the consumer.

    Examples:
        >>> import gzip, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x.gz")
        >>> with gzip.open(path, "wb") as f:
        ...     _ = f.write(b"a,b\\n1,2\\n")
        >>> with open_gzip_threaded(path) as f:
        ...     f.read()
        b'a,b\\n1,2\\n'
    """

    def __init__(self, path: str | Path, block_size: int = 1 << 20, queue_blocks: int = 32) -> None:
        super().__init__()
        self._file = igzip.open(path, "rb")
        self._queue: queue.Queue = queue.Queue(maxsize=queue_blocks)
        self._block_size = block_size
        self._pending = memoryview(b"")
        self._done = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._inflate, name="gzip-inflate", daemon=True)
        self._thread.start()

    def _inflate(self) -> None:
        try:
            while not self._stop.is_set():
                block = self._file.read(self._block_size)
                if not block:
                    break
                self._put(block)
        except BaseException as exc:  # handed to the consumer, raised by its next read
            self._put(exc)
            return
        self._put(_END)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def readable(self) -> bool:
        """True: the stream is readable."""
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - any writable buffer
        """Copy the next inflated bytes into ``buffer``; re-raises an error of the reader thread.

        Returns:
            The number of bytes copied (0 at the end of the stream).
        """
        if not self._pending and not self._done:
            item = self._queue.get()
            if item is _END:
                self._done = True
            elif isinstance(item, BaseException):
                self._done = True
                raise item
            else:
                self._pending = memoryview(item)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        """Stop the reader thread and close the file."""
        if not self.closed:
            self._stop.set()
            self._thread.join()
            self._file.close()
        super().close()


def open_gzip_threaded(path: str | Path, block_size: int = 1 << 20, queue_blocks: int = 32) -> io.BufferedReader:
    """A buffered binary stream of ``path`` inflated in a background thread (``read(n)`` returns ``n`` bytes
    until the end of the stream)."""
    return io.BufferedReader(ThreadedGzipReader(path, block_size, queue_blocks), buffer_size=block_size)
