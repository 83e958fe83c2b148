"""How bytes travel in a local cluster: control messages and authenticated data channels.

Two kinds of connection, both local to this machine:

- **control**: a socket pair between the scheduler thread (in the kernel) and
  each worker process, created before the worker starts, so nobody else can
  reach it. Small messages (task specs, "done" reports), cloudpickled because
  specs carry the user's functions. See the ``scheduler`` package and ``worker.py``.
- **data**: each worker listens for peers fetching task inputs and for the
  client gathering results, on a Unix socket in the cluster's private
  directory (mode 0700), or on ``127.0.0.1`` where Unix sockets do not exist.
  Every connection starts with the HMAC challenge of
  :mod:`multiprocessing.connection` in both directions, keyed by the
  cluster's random ``authkey``. Until that succeeds the only thing read from
  the socket is the challenge answer (at most 256 bytes, never unpickled), so
  a stranger's bytes are never unpickled.

A message on a data channel is one frame::

    [8: len(main)] [8: n] [n x (8: length, 1: how)] [main pickle] [inline buffer]...

``main`` is a pickle (protocol 5) whose large buffers — NumPy arrays, bytes in
pandas frames — were handed out of band (``buffer_callback``), so they are
never copied into the pickle. How each buffer travels (``how``):

- ``INLINE``: sent from the array's memory with ``sendall`` and received with
  ``recv_into`` into a ``bytearray`` that becomes the array's memory;
- ``HANDED_OVER`` (Unix sockets, buffers of ``HANDOVER_BYTES`` or more): the
  sender copies the buffer once into an anonymous memory file
  (``memfd_create``) and passes the file descriptor with the frame
  (``SCM_RIGHTS``); the receiver maps it and the mapping becomes the array's
  memory. One copy in all, instead of two through the socket, and the memory
  is freed by the kernel when the last mapping goes, even if a process dies.

A spilled result is a file holding one frame, all its buffers ``INLINE``
(``write_frame`` / ``read_frame``): loading it back reads each buffer into
the memory that becomes the array's, and sending it is sending the file.

A request for results, ``("get", keys)``, is answered by one frame
``("data", {key: value}, spilled_keys)`` with the results held in memory,
then one frame per spilled key, in that order: its spill file, sent with
``sendfile`` straight from the disk. The worker never loads a spilled result
to send it, so serving results bigger than its memory limit costs it no
memory. A spilled result deleted meanwhile arrives as :class:`Gone`. Other
answers: ``("missing", key)``, ``("error", message)``.
"""

from __future__ import annotations

import array
import mmap
import os
import pickle
import socket
import struct
import threading
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge

import cloudpickle

HEADER = struct.Struct("!QQ")
BUFFER_INFO = struct.Struct("!QB")
INLINE, HANDED_OVER = 0, 1
LOOPBACK = "127.0.0.1"
HANDSHAKE_TIMEOUT = 10.0
HANDOVER_BYTES = 1 << 20
MAX_HANDED_OVER = 32  # file descriptors per message
USE_UNIX_SOCKETS = hasattr(socket, "AF_UNIX")
CAN_HAND_OVER = USE_UNIX_SOCKETS and hasattr(os, "memfd_create")


def dumps_control(message) -> bytes:
    """A control message as bytes (cloudpickle: specs hold user functions)."""
    return cloudpickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def loads_control(payload: bytes):
    return pickle.loads(payload)


class DataChannel:
    """One authenticated, framed data connection (see the module docstring)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.hands_over = CAN_HAND_OVER and sock.family == socket.AF_UNIX
        if sock.family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- sending
    def send(self, obj) -> None:
        buffers: list = []
        main = cloudpickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        views = [buf.raw() for buf in buffers]
        fds: list[int] = []
        info = []
        inline = []
        try:
            for view in views:
                if self.hands_over and view.nbytes >= HANDOVER_BYTES and len(fds) < MAX_HANDED_OVER:
                    fds.append(_copy_to_memory_file(view))
                    info.append(BUFFER_INFO.pack(view.nbytes, HANDED_OVER))
                else:
                    inline.append(view)
                    info.append(BUFFER_INFO.pack(view.nbytes, INLINE))
            head = HEADER.pack(len(main), len(views)) + b"".join(info) + main
            self._send_head(head, fds)
        finally:
            for fd in fds:
                os.close(fd)
        for view in inline:
            self.sock.sendall(view)

    def send_file(self, f, size: int) -> None:
        """Send a file written by :func:`write_frame`: it is one frame as it is."""
        sent = self.sock.sendfile(f, 0, size)
        if sent != size:  # the file shrank under us: the stream is broken, close it
            self.sock.close()
            raise OSError(f"sent {sent} of {size} bytes of a spill file")

    def _send_head(self, head: bytes, fds: list) -> None:
        if not fds:
            self.sock.sendall(head)
            return
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        sent = self.sock.sendmsg([head], ancillary)
        if sent < len(head):
            self.sock.sendall(memoryview(head)[sent:])

    # -- receiving
    def recv(self):
        fds: list[int] = []
        try:
            n_main, n_buffers = HEADER.unpack(self._read_head(fds))
            raw_info = self._read_exactly(n_buffers * BUFFER_INFO.size)
            info = [
                BUFFER_INFO.unpack_from(raw_info, i * BUFFER_INFO.size) for i in range(n_buffers)
            ]
            main = self._read_exactly(n_main)
            handed = iter(fds)
            buffers = [
                _map_memory_file(next(handed), n) if how == HANDED_OVER else None for n, how in info
            ]
            for i, (n, how) in enumerate(info):
                if how == INLINE:
                    buffers[i] = self._read_exactly(n)
        finally:
            for fd in fds:
                os.close(fd)
        return pickle.loads(main, buffers=buffers)

    def _read_head(self, fds: list) -> bytearray:
        """The fixed header, collecting file descriptors handed over with it."""
        if not self.hands_over:
            return self._read_exactly(HEADER.size)
        head = bytearray()
        space = socket.CMSG_SPACE(MAX_HANDED_OVER * array.array("i").itemsize)
        while len(head) < HEADER.size:
            data, ancillary, flags, _ = self.sock.recvmsg(HEADER.size - len(head), space)
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    received = array.array("i")
                    received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
                    fds.extend(received)
            if not data:
                raise EOFError("data channel closed")
            if flags & socket.MSG_CTRUNC:
                raise OSError("file descriptors handed over were cut off")
            head += data
        return head

    def _read_exactly(self, n: int) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            chunk = self.sock.recv_into(view[got:], min(n - got, 1 << 26))
            if not chunk:
                raise EOFError("data channel closed")
            got += chunk
        return buf

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def write_frame(obj, f) -> None:
    """Write ``obj`` to the binary file ``f`` as one frame, its buffers inline and uncopied."""
    buffers: list = []
    main = cloudpickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    views = [buf.raw() for buf in buffers]
    info = b"".join(BUFFER_INFO.pack(view.nbytes, INLINE) for view in views)
    f.write(HEADER.pack(len(main), len(views)) + info + main)
    for view in views:
        f.write(view)


def read_frame(f):
    """The object in a file written by :func:`write_frame`."""
    n_main, n_buffers = HEADER.unpack(_read_file_exactly(f, HEADER.size))
    raw_info = _read_file_exactly(f, n_buffers * BUFFER_INFO.size)
    sizes = [BUFFER_INFO.unpack_from(raw_info, i * BUFFER_INFO.size)[0] for i in range(n_buffers)]
    main = _read_file_exactly(f, n_main)
    buffers = [_read_file_exactly(f, n) for n in sizes]
    return pickle.loads(main, buffers=buffers)


def _read_file_exactly(f, n: int) -> bytearray:
    buf = bytearray(n)
    if f.readinto(buf) != n:
        raise EOFError("a spill file ended early")
    return buf


def _copy_to_memory_file(view: memoryview) -> int:
    """A new anonymous memory file holding a copy of ``view``; returns its descriptor."""
    fd = os.memfd_create("lazycell-data", os.MFD_CLOEXEC)
    data = view.cast("B")
    try:
        written = 0  # write(), not a mapping: the kernel allocates the pages far faster
        while written < len(data):
            written += os.write(fd, data[written:])
    except BaseException:
        os.close(fd)
        raise
    return fd


def _map_memory_file(fd: int, nbytes: int) -> mmap.mmap:
    """Map a handed-over memory file (the mapping outlives the descriptor)."""
    return mmap.mmap(fd, nbytes)


def _handshake(sock: socket.socket, authkey: bytes, server: bool) -> None:
    """Both sides prove they hold ``authkey``; raises AuthenticationError otherwise."""
    conn = Connection(os.dup(sock.fileno()))
    try:
        if server:
            deliver_challenge(conn, authkey)
            answer_challenge(conn, authkey)
        else:
            answer_challenge(conn, authkey)
            deliver_challenge(conn, authkey)
    finally:
        conn.close()  # closes only the duplicate descriptor


def connect(address, authkey: bytes, timeout: float = HANDSHAKE_TIMEOUT) -> DataChannel:
    """Open an authenticated data channel to a worker at ``address`` (a path or host/port)."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
    else:
        sock = socket.create_connection(tuple(address), timeout=timeout)
    sock.settimeout(None)  # the handshake reads the descriptor directly: it must block
    _set_receive_timeout(sock, timeout)
    try:
        _handshake(sock, authkey, server=False)
    except BaseException:
        sock.close()
        raise
    _set_receive_timeout(sock, 0)
    return DataChannel(sock)


def _set_receive_timeout(sock: socket.socket, seconds: float) -> None:
    """An OS-level receive timeout (0: none) that holds for reads of the raw descriptor too."""
    whole = int(seconds)
    micro = int((seconds - whole) * 1e6)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", whole, micro))


def listen(private_dir: str | None) -> socket.socket:
    """A listening socket: a Unix socket in ``private_dir``, else TCP on loopback."""
    if USE_UNIX_SOCKETS and private_dir is not None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(os.path.join(private_dir, f"worker-{os.getpid()}-{id(server):x}.sock"))
    else:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.bind((LOOPBACK, 0))
    server.listen(64)
    return server


def accept_authenticated(sock: socket.socket, authkey: bytes) -> DataChannel | None:
    """Run the server side of the handshake on an accepted socket; None if refused."""
    sock.settimeout(None)
    _set_receive_timeout(sock, HANDSHAKE_TIMEOUT)  # a silent peer is dropped, not waited on
    try:
        _handshake(sock, authkey, server=True)
    except Exception:  # AuthenticationError, a closed or silent socket, garbage
        sock.close()
        return None
    _set_receive_timeout(sock, 0)
    return DataChannel(sock)


class MissingData(KeyError):
    """A peer does not hold (or cannot send) a key it was asked for."""


class UnsendableResult(TypeError):
    """A worker holds a result that cannot be pickled to send it (a lock, an open file)."""


class Gone:
    """Sent in place of a spilled result deleted before it could be sent."""

    def __init__(self, key):
        self.key = key


class DataFetcher:
    """Fetches results from workers' data servers, reusing one channel per worker at a time.

    Used by workers (task inputs held by a peer) and by the client (gathering
    results). Safe to call from several threads: a channel is taken out of the
    idle pool for the length of one request.
    """

    def __init__(self, authkey: bytes):
        self.authkey = authkey
        self._idle: dict = {}  # address -> [DataChannel]
        self._lock = threading.Lock()

    def fetch(self, address, keys: list) -> dict:
        """``{key: value}`` for ``keys`` held by the worker at ``address``.

        Raises :class:`MissingData` if the worker is gone or no longer holds
        one of them, :class:`UnsendableResult` if one cannot be pickled there.
        """
        try:
            channel = self._take(address)
        except (OSError, EOFError) as exc:
            raise MissingData(f"worker at {address} is unreachable: {exc}") from None
        try:
            channel.send(("get", keys))
            reply = channel.recv()
            gone = None
            if reply[0] == "data":
                _, values, spilled = reply
                for key in spilled:  # one frame each, after the results held in memory
                    value = values[key] = channel.recv()
                    if type(value) is Gone:
                        gone = key
        except (OSError, EOFError) as exc:
            channel.close()
            raise MissingData(f"worker at {address} is unreachable: {exc}") from None
        except BaseException:  # a value that cannot be unpickled here: the stream is cut
            channel.close()
            raise
        self._give_back(address, channel)
        kind, body = reply[:2]
        if kind == "data":
            if gone is not None:
                raise MissingData(f"worker at {address} no longer holds {gone!r}")
            return values
        if kind == "missing":
            raise MissingData(f"worker at {address} does not hold {body!r}")
        raise UnsendableResult(body)

    def _take(self, address) -> DataChannel:
        with self._lock:
            idle = self._idle.get(address)
            if idle:
                return idle.pop()
        return connect(address, self.authkey)

    def _give_back(self, address, channel: DataChannel) -> None:
        with self._lock:
            self._idle.setdefault(address, []).append(channel)

    def forget(self, address) -> None:
        with self._lock:
            channels = self._idle.pop(address, [])
        for channel in channels:
            channel.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for channels in idle.values():
            for channel in channels:
                channel.close()
