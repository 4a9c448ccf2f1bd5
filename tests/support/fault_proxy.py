"""A fault-injecting TCP proxy on 127.0.0.1, between an object-storage client and a
real server (moto's S3, the GCS emulator), for the remote-fault tests and benchmarks.

The proxy reads each HTTP request the client sends (its head, and a body of
Content-Length bytes), forwards it to the server and relays the answer back, doing
to the requests that `Fault.match` selects (the first `Fault.times` of them) what
`Fault.mode` says:

* STALL: accept the request and never answer (the connection stays open); with
  `after`, relay that many bytes of the answer first (a body that stops mid-way);
* RESET: relay `after` bytes of the answer (headers included), then reset the
  connection (RST);
* TRUNCATE: relay `after` bytes of the answer, then close the connection cleanly
  (FIN: a body shorter than its Content-Length);
* DRIP: relay the answer `drip` bytes at a time, one piece every `tick` seconds;
* THROTTLE: answer 503 SlowDown (S3's XML error) or 429 rateLimitExceeded (GCS's
  JSON error) without asking the server, and close the connection;
* PASS: relay the answer as it comes.

Every loop is bounded: sockets poll with short timeouts, and the proxy stops by
itself after `lifetime` seconds (a stalled connection is closed then too).

    with FaultProxy(server.endpoint, Fault(RESET, match=".data-", times=2, after=4096)) as p:
      env = {**server.env, **p.env(server.kind)}
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
import dataclasses
import re
import socket
import struct
import threading
import time
import urllib.parse

PASS = "pass"
STALL = "stall"
RESET = "reset"
TRUNCATE = "truncate"
DRIP = "drip"
THROTTLE = "throttle"
MODES = (PASS, STALL, RESET, TRUNCATE, DRIP, THROTTLE)

_POLL = 0.1  # seconds every blocking socket call waits before checking for stop
_HEAD_LIMIT = 64 << 10


@dataclasses.dataclass(frozen=True)
class Fault:
  """What the proxy does to the requests it selects.

  Attributes:
    mode: one of MODES.
    match: a regular expression searched in the request line ("GET /bucket/key?x
      HTTP/1.1", the path unquoted): the requests the fault applies to ('' selects all).
    times: how many of the selected requests get the fault, then the others pass
      (None: every one).
    after: RESET / TRUNCATE: bytes of the answer relayed before the cut; STALL: before
      the answer stops (0: the request is never forwarded).
    drip: DRIP: bytes relayed per tick.
    tick: DRIP: seconds between pieces.
    status: THROTTLE: 503 (SlowDown) or 429 (rate limit exceeded).
  """

  mode: str = PASS
  match: str = ""
  times: int | None = None
  after: int = 0
  drip: int = 256
  tick: float = 0.05
  status: int = 503

  def __post_init__(self):
    if self.mode not in MODES:
      raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")


_PASS = Fault()


def _throttle_answer(status: int, method: str, line: str) -> bytes:
  gcs = "/storage/v1/" in line or "/upload/storage/" in line or "/download/storage/" in line
  if gcs:
    reason = "rateLimitExceeded" if status == 429 else "backendError"
    message = (
      "The rate of requests exceeds the rate limit. Please reduce the rate of requests."
      if status == 429
      else "Backend Error"
    )
    body = (
      f'{{"error": {{"code": {status}, "message": "{message}", '
      f'"errors": [{{"message": "{message}", "domain": "usageLimits", '
      f'"reason": "{reason}"}}]}}}}'
    ).encode()
    kind = "application/json; charset=UTF-8"
  else:
    code, message = (
      ("SlowDown", "Please reduce your request rate.")
      if status == 503
      else ("TooManyRequests", "Please reduce your request rate.")
    )
    body = (
      '<?xml version="1.0" encoding="UTF-8"?>\n'
      f"<Error><Code>{code}</Code><Message>{message}</Message>"
      "<RequestId>od-guard-fault-proxy</RequestId></Error>"
    ).encode()
    kind = "application/xml"
  phrase = {503: "Slow Down", 429: "Too Many Requests"}.get(status, "Error")
  head = (
    f"HTTP/1.1 {status} {phrase}\r\nContent-Type: {kind}\r\n"
    f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    "x-amz-request-id: od-guard-fault-proxy\r\n\r\n"
  ).encode()
  return head if method == "HEAD" else head + body


class _Connection:
  """One client connection: requests parsed on the proxy's thread for it, the
  answers relayed on a second thread."""

  def __init__(self, proxy: FaultProxy, client: socket.socket):
    self.proxy = proxy
    self.client = client
    self.upstream: socket.socket | None = None
    self.fault = _PASS  # the fault of the answer being relayed
    self.relayed = 0  # bytes of that answer relayed so far
    self.dead = threading.Event()
    self.lock = threading.Lock()

  def _alive(self) -> bool:
    return not self.dead.is_set() and not self.proxy.stopping()

  def _recv(self, sock: socket.socket) -> bytes | None:
    """Bytes from `sock`, b'' at its end, None when nothing came within _POLL."""
    try:
      return sock.recv(1 << 16)
    except TimeoutError:
      return None
    except OSError:
      return b""

  def _read_request(self, buf: bytearray) -> tuple[bytes, bytes] | None:
    """(head, body) of the client's next request, or None when it has gone."""
    while b"\r\n\r\n" not in buf:
      if not self._alive() or len(buf) > _HEAD_LIMIT:
        return None
      data = self._recv(self.client)
      if data == b"":
        return None
      if data:
        buf += data
    end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:end])
    del buf[:end]
    length = 0
    for line in head.split(b"\r\n")[1:]:
      name, _, value = line.partition(b":")
      if name.strip().lower() == b"content-length":
        length = int(value.strip() or 0)
    while len(buf) < length:
      if not self._alive():
        return None
      data = self._recv(self.client)
      if data == b"":
        return None
      if data:
        buf += data
    body = bytes(buf[:length])
    del buf[:length]
    return head, body

  def serve(self) -> None:
    buf = bytearray()
    try:
      self.client.settimeout(_POLL)
      while self._alive():
        request = self._read_request(buf)
        if request is None:
          return
        head, body = request
        first = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, _, rest = first.partition(" ")
        line = f"{method} {urllib.parse.unquote(rest)}"
        fault = self.proxy._admit(line, head.decode("latin-1"))
        if fault.mode == STALL and not fault.after:
          self._hold()
          return
        if fault.mode == THROTTLE:
          self.client.sendall(_throttle_answer(fault.status, method, line))
          return
        if self.upstream is None:
          self.upstream = socket.create_connection(self.proxy.target, timeout=5)
          self.upstream.settimeout(_POLL)
          threading.Thread(target=self._relay, daemon=True, name="fault-proxy-relay").start()
        with self.lock:
          self.fault, self.relayed = fault, 0
        self.upstream.sendall(head + body)
    except OSError:
      return
    finally:
      self._close()

  def _hold(self) -> None:
    """STALL: keep the connection open, answering nothing, until the client leaves
    or the proxy stops."""
    while self._alive():
      if self._recv(self.client) == b"":
        return

  def _relay(self) -> None:
    try:
      while self._alive():
        data = self._recv(self.upstream)
        if data is None:
          continue
        if data == b"":
          if self.fault.mode == STALL:  # the server is done; the client hears nothing more
            while self._alive():
              time.sleep(_POLL)
          return
        with self.lock:
          fault = self.fault
          relayed = self.relayed
          self.relayed += len(data)
        if fault.mode == STALL and relayed + len(data) > fault.after:
          keep = max(0, fault.after - relayed)
          if keep:
            self.client.sendall(data[:keep])
          continue  # the rest is dropped: the answer stops, the connection stays open
        if fault.mode in (RESET, TRUNCATE) and relayed + len(data) > fault.after:
          keep = max(0, fault.after - relayed)
          if keep:
            self.client.sendall(data[:keep])
          self._cut(fault.mode)
          return
        if fault.mode == DRIP:
          for i in range(0, len(data), fault.drip):
            if not self._alive():
              return
            self.client.sendall(data[i : i + fault.drip])
            time.sleep(fault.tick)
        else:
          self.client.sendall(data)
    except OSError:
      return
    finally:
      self._close()

  def _cut(self, mode: str) -> None:
    if mode == RESET:  # SO_LINGER 0: the last close sends RST instead of FIN
      self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
      # Now, not when the request thread's recv (which holds the socket) times out:
      # SHUT_RD wakes it, SHUT_WR sends the FIN.
      self.client.shutdown(socket.SHUT_RD if mode == RESET else socket.SHUT_RDWR)
    self._close()

  def _close(self) -> None:
    self.dead.set()
    for sock in (self.client, self.upstream):
      if sock is not None:
        with contextlib.suppress(OSError):
          sock.close()


class FaultProxy:
  """A proxy on 127.0.0.1 (a free port) to `target` ("http://host:port").

  Attributes:
    endpoint: http://127.0.0.1:PORT, what the client is pointed at.
    requests: every request line seen ("GET /bucket/key ..."), in order.
    log: (when, request line, request head) of each request, in order.
    faulted: how many requests got the fault.
  """

  def __init__(
    self,
    target: str,
    fault: Fault = _PASS,
    *,
    lifetime: float = 300.0,
    on_request: Callable[[str], None] | None = None,
  ):
    parts = urllib.parse.urlsplit(target)
    self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
    self._fault = fault
    self._left = fault.times
    self._lifetime = lifetime
    self._on_request = on_request
    self._lock = threading.Lock()
    self._stop = threading.Event()
    self._deadline = 0.0
    self.requests: list[str] = []
    self.log: list[tuple[float, str, str]] = []  # (time.monotonic(), line, the whole head)
    self.faulted = 0
    self._listener = socket.create_server(("127.0.0.1", 0))
    self._listener.settimeout(_POLL)
    self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
    self._threads: list[threading.Thread] = []

  def env(self, kind: str) -> dict[str, str]:
    """The variables that point an s3 / gcs client at the proxy."""
    return {"AWS_ENDPOINT_URL" if kind == "s3" else "STORAGE_EMULATOR_HOST": self.endpoint}

  def set_fault(self, fault: Fault) -> None:
    """Applies `fault` to the requests from now on (counters restart)."""
    with self._lock:
      self._fault, self._left, self.faulted = fault, fault.times, 0
      self.requests.clear()
      self.log.clear()

  def _admit(self, line: str, head: str) -> Fault:
    with self._lock:
      self.requests.append(line)
      self.log.append((time.monotonic(), line, head))
      hook = self._on_request
      fault = self._fault
      chosen = (
        fault.mode != PASS
        and re.search(fault.match, line) is not None
        and (self._left is None or self._left > 0)
      )
      if chosen:
        self.faulted += 1
        if self._left is not None:
          self._left -= 1
    if hook is not None:
      hook(line)
    return fault if chosen else _PASS

  def stopping(self) -> bool:
    return self._stop.is_set() or time.monotonic() > self._deadline

  def _accept(self) -> None:
    try:
      while not self.stopping():
        try:
          client, _ = self._listener.accept()
        except TimeoutError:
          continue
        except OSError:
          return
        thread = threading.Thread(
          target=_Connection(self, client).serve, daemon=True, name="fault-proxy-conn"
        )
        thread.start()
        self._threads.append(thread)
    finally:
      self._listener.close()

  def start(self) -> FaultProxy:
    self._deadline = time.monotonic() + self._lifetime
    thread = threading.Thread(target=self._accept, daemon=True, name="fault-proxy-accept")
    thread.start()
    self._threads.append(thread)
    return self

  def stop(self) -> None:
    self._stop.set()
    for thread in list(self._threads):
      thread.join(timeout=2)

  def __enter__(self) -> FaultProxy:
    return self.start()

  def __exit__(self, *exc) -> None:
    self.stop()
