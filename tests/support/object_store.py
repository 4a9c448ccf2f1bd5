"""Object storage servers on 127.0.0.1 for tests, demos and benchmarks.

`start_s3` runs moto's S3 server and `start_gcs` the gcp-storage-emulator, each
in a thread of this process on a free port. Both count the bytes they send
back, per request path, so a test can tell which objects a client fetched and
how much of each (`Server.served`). `Server.env` is the environment a client
process needs to reach the server (endpoint and throwaway credentials), the
way a user configures s3fs / gcsfs.

Needs the plain environment's test servers (`moto[server]`,
`gcp-storage-emulator`) and the `[s3]` / `[gcs]` extras for uploads.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import threading
import urllib.parse

S3_KEY = "od-guard-testing"
S3_SECRET = "od-guard-testing-secret"
REGION = "us-east-1"


class _CountingWriter:
  """The response stream of one request handler, counting what it sends."""

  def __init__(self, stream, handler, served: ServedBytes):
    self._stream = stream
    self._handler = handler
    self._served = served

  def write(self, data) -> int:
    self._served.add(self._handler, len(data))
    return self._stream.write(data)

  def __getattr__(self, name):
    return getattr(self._stream, name)


class ServedBytes:
  """Bytes sent (headers and bodies) per "METHOD /path" (query dropped, unquoted)."""

  def __init__(self):
    self._lock = threading.Lock()
    self._bytes: collections.Counter = collections.Counter()
    self._requests: collections.Counter = collections.Counter()

  def add(self, handler, n: int) -> None:
    path = urllib.parse.unquote(getattr(handler, "path", "").split("?", 1)[0])
    key = f"{getattr(handler, 'command', '?')} {path}"
    with self._lock:
      self._bytes[key] += n

  def count_request(self, handler) -> None:
    path = urllib.parse.unquote(getattr(handler, "path", "").split("?", 1)[0])
    with self._lock:
      self._requests[f"{getattr(handler, 'command', '?')} {path}"] += 1

  def reset(self) -> None:
    with self._lock:
      self._bytes.clear()
      self._requests.clear()

  def bytes_for(self, fragment: str = "") -> int:
    """Bytes sent for requests whose "METHOD /path" contains `fragment`."""
    with self._lock:
      return sum(n for k, n in self._bytes.items() if fragment in k)

  def requests_for(self, fragment: str = "") -> int:
    with self._lock:
      return sum(n for k, n in self._requests.items() if fragment in k)

  def snapshot(self) -> dict[str, int]:
    with self._lock:
      return dict(self._bytes)


def _counting(handler_class, served: ServedBytes):
  class Counting(handler_class):
    def setup(self):
      super().setup()
      self.wfile = _CountingWriter(self.wfile, self, served)

    def parse_request(self):
      ok = super().parse_request()
      if ok:
        served.count_request(self)
      return ok

    def log_message(self, *args):  # quiet: one line per request otherwise
      pass

    def log(self, *args):  # werkzeug's request log
      pass

  return Counting


@dataclasses.dataclass
class Server:
  """A running object storage server.

  Attributes:
    kind: "s3" or "gcs".
    scheme: the URI scheme its objects have ("s3" or "gs").
    endpoint: http://127.0.0.1:PORT.
    served: bytes sent back, per request.
    env: the environment variables a client needs (endpoint, credentials).
  """

  kind: str
  scheme: str
  endpoint: str
  served: ServedBytes
  env: dict[str, str]
  _stop: object = dataclasses.field(repr=False, default=None)

  def url(self, bucket: str, key: str = "") -> str:
    return f"{self.scheme}://{bucket}/{key}" if key else f"{self.scheme}://{bucket}"

  def filesystem(self):
    """An fsspec filesystem for this server (not cached: independent of the
    process's environment)."""
    if self.kind == "s3":
      import s3fs

      return s3fs.S3FileSystem(
        endpoint_url=self.endpoint,
        key=S3_KEY,
        secret=S3_SECRET,
        client_kwargs={"region_name": REGION},
        skip_instance_cache=True,
      )
    from gcsfs.core import GCSFileSystem  # the JSON API only (see checkpoint/remote.py)

    return GCSFileSystem(
      endpoint_url=self.endpoint, token="anon", project="od-guard", skip_instance_cache=True
    )

  def make_bucket(self, bucket: str) -> None:
    if self.kind == "s3":
      import boto3

      boto3.client(
        "s3",
        endpoint_url=self.endpoint,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name=REGION,
      ).create_bucket(Bucket=bucket)
    else:
      self.filesystem().mkdir(bucket)

  def upload(self, local_path: str, bucket: str, key: str) -> str:
    """Uploads a local file (or a directory, recursively); returns its URI."""
    fs = self.filesystem()
    if os.path.isdir(local_path):
      for root, _, files in os.walk(local_path):
        for name in files:
          rel = os.path.relpath(os.path.join(root, name), local_path).replace(os.sep, "/")
          fs.put_file(os.path.join(root, name), f"{bucket}/{key.rstrip('/')}/{rel}")
    else:
      fs.put_file(local_path, f"{bucket}/{key}")
    self.served.reset()
    return self.url(bucket, key)

  def stop(self) -> None:
    if self._stop is not None:
      self._stop()
      self._stop = None


def _serve(httpd) -> callable:
  # A client that hangs up early (a ranged read it no longer needs) is normal.
  httpd.handle_error = lambda request, client_address: None
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()

  def stop():
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)

  return stop


def start_s3() -> Server:
  """moto's S3 server on 127.0.0.1, a free port."""
  from moto.moto_server.werkzeug_app import DomainDispatcherApplication
  from moto.moto_server.werkzeug_app import MotoRequestHandler
  from moto.moto_server.werkzeug_app import create_backend_app
  from werkzeug.serving import make_server

  served = ServedBytes()
  app = DomainDispatcherApplication(create_backend_app)
  httpd = make_server(
    "127.0.0.1", 0, app, threaded=True, request_handler=_counting(MotoRequestHandler, served)
  )
  endpoint = f"http://127.0.0.1:{httpd.server_port}"
  env = {
    "AWS_ACCESS_KEY_ID": S3_KEY,
    "AWS_SECRET_ACCESS_KEY": S3_SECRET,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ENDPOINT_URL": endpoint,
  }
  return Server("s3", "s3", endpoint, served, env, _serve(httpd))


def start_gcs() -> Server:
  """gcp-storage-emulator on 127.0.0.1, a free port (objects in memory)."""
  from http import server as http_server

  from gcp_storage_emulator import server as emulator
  from gcp_storage_emulator.storage import Storage

  served = ServedBytes()
  storage = Storage(use_memory_fs=True)
  handler = _counting(emulator.RequestHandler, served)
  httpd = http_server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, storage))
  httpd.daemon_threads = True
  endpoint = f"http://127.0.0.1:{httpd.server_port}"
  env = {"STORAGE_EMULATOR_HOST": endpoint, "FSSPEC_GCS_TOKEN": "anon"}
  return Server("gcs", "gs", endpoint, served, env, _serve(httpd))


def client_env(server: Server | None = None) -> dict[str, str]:
  """The environment for a client process: the server's variables, and none
  of the caller's cloud settings (profiles, real endpoints) leaking in."""
  env = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("AWS_", "FSSPEC_", "GOOGLE_", "STORAGE_EMULATOR", "CLOUDSDK_"))
  }
  env["NO_GCE_CHECK"] = "true"  # gcsfs: no metadata-server probe off Google Cloud
  if server is not None:
    env.update(server.env)
  return env
