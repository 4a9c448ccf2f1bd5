"""A headless Chromium driven over the Chrome DevTools Protocol, stdlib only.

Chromium speaks the protocol over a pair of pipes when started with
``--remote-debugging-pipe`` (it reads commands on fd 3 and writes replies and
events on fd 4, each message JSON ended by a NUL byte), so no websocket client
or browser driver package is needed. Used by the dashboard's browser tests and
its benchmark; tests skip where `find_chromium()` finds nothing.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
  """The path of a Chromium (or Chrome) binary, or None."""
  explicit = os.environ.get("OD_GUARD_CHROMIUM")
  if explicit:
    return explicit if os.access(explicit, os.X_OK) else None
  for name in _CANDIDATES:
    path = shutil.which(name)
    if path:
      return path
  return None


class BrowserError(RuntimeError):
  """The browser reported an error, exited, or a wait timed out."""


class Chromium:
  """One headless Chromium with one page.

  Args:
    binary: the browser (default: `find_chromium()`).
    width, height: the viewport, in CSS pixels.
  """

  def __init__(self, binary: str | None = None, *, width: int = 1400, height: int = 900):
    binary = binary or find_chromium()
    if binary is None:
      raise BrowserError("No Chromium found: install Debian's 'chromium' package.")
    self._profile = tempfile.mkdtemp(prefix="od_guard_chromium_")
    to_browser_r, self._to_browser = os.pipe()
    self._from_browser, from_browser_w = os.pipe()
    # The browser's ends, moved to fds >= 10 (close-on-exec), so that the
    # child's dup2 onto 3 and 4 never has a source of 3 or 4 (dup2 onto itself
    # would leave close-on-exec set; onto the other would clobber it).
    child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
    child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(to_browser_r)
    os.close(from_browser_w)

    def fds_3_and_4():
      os.dup2(child_r, 3)  # dup2's copies are inherited across exec
      os.dup2(child_w, 4)

    args = [
      binary,
      "--headless=new",
      "--remote-debugging-pipe",
      f"--user-data-dir={self._profile}",
      f"--window-size={width},{height}",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-extensions",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-default-apps",
      "--no-first-run",
      "--no-default-browser-check",
      "--hide-scrollbars",
      "--mute-audio",
      "about:blank",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
      args.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
    self.process = subprocess.Popen(
      args,
      close_fds=False,  # every other fd of ours is close-on-exec (PEP 446)
      preexec_fn=fds_3_and_4,  # noqa: PLW1509  the child only dup2s its pipes
      stdin=subprocess.DEVNULL,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
    )
    os.close(child_r)
    os.close(child_w)
    self._next_id = 0
    self._write_lock = threading.Lock()
    self._cond = threading.Condition()
    self._replies: dict[int, dict] = {}
    self._closed = False
    self.dialogs: list[str] = []  # messages of alert/confirm/prompt dialogs (auto-dismissed)
    self.exceptions: list[str] = []  # uncaught page exceptions
    self.requests: list[str] = []  # every URL the page requested
    self._reader = threading.Thread(target=self._read_loop, daemon=True)
    self._reader.start()
    target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    self._session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
      "sessionId"
    ]
    for domain in ("Page", "Runtime", "Network"):
      self.page(f"{domain}.enable")
    self.page(
      "Emulation.setDeviceMetricsOverride",
      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )

  # Protocol.

  def _read_loop(self) -> None:
    buffer = b""
    while True:
      try:
        chunk = os.read(self._from_browser, 1 << 16)
      except OSError:
        chunk = b""
      if not chunk:
        with self._cond:
          self._closed = True
          self._cond.notify_all()
        return
      buffer += chunk
      while b"\0" in buffer:
        raw, buffer = buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "id" in message:
          with self._cond:
            self._replies[message["id"]] = message
            self._cond.notify_all()
        else:
          self._on_event(message)

  def _on_event(self, message: dict) -> None:
    method, params = message.get("method"), message.get("params", {})
    if method == "Page.javascriptDialogOpening":
      self.dialogs.append(params.get("message", ""))
      self._post("Page.handleJavaScriptDialog", {"accept": False}, message.get("sessionId"))
    elif method == "Runtime.exceptionThrown":
      details = params.get("exceptionDetails", {})
      self.exceptions.append(
        (details.get("exception") or {}).get("description") or details.get("text", "")
      )
    elif method == "Network.requestWillBeSent":
      self.requests.append(params.get("request", {}).get("url", ""))

  def _post(self, method: str, params: dict | None, session: str | None) -> int:
    with self._write_lock:
      self._next_id += 1
      message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
      if session:
        message["sessionId"] = session
      os.write(self._to_browser, json.dumps(message).encode("utf-8") + b"\0")
      return self._next_id

  def send(
    self, method: str, params: dict | None = None, *, session: str | None = None, timeout=60.0
  ) -> dict:
    """Sends a protocol command and returns its result.

    Raises:
      BrowserError: the command failed, timed out, or the browser exited.
    """
    ident = self._post(method, params, session)
    deadline = time.time() + timeout
    with self._cond:
      while ident not in self._replies:
        if self._closed:
          raise BrowserError(f"Chromium exited during {method}.")
        remaining = deadline - time.time()
        if remaining <= 0:
          raise BrowserError(f"{method}: no reply within {timeout} s.")
        self._cond.wait(remaining)
      reply = self._replies.pop(ident)
    if "error" in reply:
      raise BrowserError(f"{method}: {reply['error']}")
    return reply.get("result", {})

  def page(self, method: str, params: dict | None = None, **kwargs) -> dict:
    """Sends a command to the page's session."""
    return self.send(method, params, session=self._session, **kwargs)

  # Page.

  def navigate(self, url: str) -> None:
    self.page("Page.navigate", {"url": url})

  def frame_context(self, url_part: str) -> int:
    """An execution context in the (same-origin) frame whose URL contains
    `url_part`, e.g. TensorBoard's plugin iframe; for `evaluate(context=...)`.

    Raises:
      BrowserError: no such frame.
    """

    def frames(tree):
      yield tree["frame"]
      for child in tree.get("childFrames", ()):
        yield from frames(child)

    tree = self.page("Page.getFrameTree")["frameTree"]
    frame = next((f for f in frames(tree) if url_part in f.get("url", "")), None)
    if frame is None:
      raise BrowserError(f"No frame whose URL contains {url_part!r}.")
    world = self.page("Page.createIsolatedWorld", {"frameId": frame["id"], "worldName": "od_guard"})
    return world["executionContextId"]

  def evaluate(self, expression: str, *, timeout: float = 60.0, context: int | None = None) -> Any:
    """The value of a JavaScript expression in the page (promises awaited).

    Args:
      expression: JavaScript.
      timeout: seconds.
      context: an execution context (`frame_context`); default the page's.

    Raises:
      BrowserError: the expression threw.
    """
    params: dict[str, Any] = {"expression": expression, "awaitPromise": True, "returnByValue": True}
    if context is not None:
      params["contextId"] = context
    result = self.page("Runtime.evaluate", params, timeout=timeout)
    if "exceptionDetails" in result:
      details = result["exceptionDetails"]
      raise BrowserError(
        f"{expression[:120]!r} threw: "
        f"{(details.get('exception') or {}).get('description') or details.get('text')}"
      )
    return result.get("result", {}).get("value")

  def wait_for(self, expression: str, *, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Polls `expression` until it is truthy; returns its value.

    Raises:
      BrowserError: it stayed falsy for `timeout` seconds.
    """
    deadline = time.time() + timeout
    while True:
      try:
        value = self.evaluate(expression)
      except BrowserError:
        value = None  # e.g. the page is between documents
      if value:
        return value
      if time.time() > deadline:
        raise BrowserError(f"Timed out after {timeout} s waiting for {expression!r}.")
      time.sleep(interval)

  def screenshot(self, path: str) -> str:
    """Saves a PNG of the viewport to `path`; returns it."""
    data = self.page("Page.captureScreenshot", {"format": "png"})["data"]
    with open(path, "wb") as f:
      f.write(base64.b64decode(data))
    return path

  def close(self) -> None:
    if self.process.poll() is None:
      with contextlib.suppress(BrowserError):
        self.send("Browser.close", timeout=10)
      try:
        self.process.wait(timeout=10)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()
    for fd in (self._to_browser, self._from_browser):
      with contextlib.suppress(OSError):
        os.close(fd)
    shutil.rmtree(self._profile, ignore_errors=True)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
