"""Checkpoints on object storage, read without TensorFlow.

A real S3 server (moto) and a real GCS emulator (gcp-storage-emulator) run on
127.0.0.1 for the module, holding checkpoints written by TensorFlow
(tests/data/tiny_checkpoints, from make_tiny_checkpoints.py) and, when
../shared is present, the users' real (index-only) checkpoints. Every command
runs as a user runs it, in a fresh interpreter that must never import
TensorFlow, and must say exactly what it says about the same files on local
disk. The servers count the bytes they send per object: commands that need
only the index and the object graph must not fetch the data shard's tensors.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time

import pytest

from conftest import DATA
from conftest import HAS_REALWORLD
from conftest import REPO
from conftest import SIGN_LANGUAGE
from conftest import needs_realworld
from conftest import run_cli

pytest.importorskip("fsspec")
pytest.importorskip("s3fs")
pytest.importorskip("gcsfs")
pytest.importorskip("moto.server")
pytest.importorskip("gcp_storage_emulator")

from support import object_store

pytestmark = pytest.mark.plain

TINY = DATA / "tiny_checkpoints"
DETECTOR = TINY / "detector" / "ckpt-1"
DETECTOR_5 = TINY / "detector_5cls" / "ckpt-1"
SHARD = "ckpt-1.data-00000-of-00001"
BUCKET = "ckpts"
EXAMPLE_CONFIG = REPO / "examples" / "tiny_ssd_mobilenet_v2" / "pipeline.config"
_CLOUD_VARS = ("AWS_", "FSSPEC_", "GOOGLE_", "STORAGE_EMULATOR", "CLOUDSDK_", "GCSFS_")
_VOLATILE = ("seconds", "timings", "elapsed")


@pytest.fixture(scope="module")
def stores():
  """Both servers, each holding tiny_checkpoints/ (and the users' checkpoints)."""
  servers = {"s3": object_store.start_s3(), "gcs": object_store.start_gcs()}
  try:
    for server in servers.values():
      server.make_bucket(BUCKET)
      server.upload(str(TINY), BUCKET, "tiny")
      if HAS_REALWORLD:
        server.upload(str(SIGN_LANGUAGE), BUCKET, "users/sign_language")
    yield servers
  finally:
    for server in servers.values():
      server.stop()


def _env(server: object_store.Server | None, **extra: str) -> tuple[dict, tuple]:
  env = {"NO_GCE_CHECK": "true", **(server.env if server else {}), **extra}
  unset = tuple(k for k in os.environ if k.startswith(_CLOUD_VARS) and k not in env)
  return env, unset


def _od_guard(server, *args: str, **extra: str):
  """`od-guard ARGS` against `server`; asserts TensorFlow was never imported."""
  env, unset = _env(server, **extra)
  r = run_cli(*args, check_tf=True, env=env, unset=unset)
  assert r.stderr.rstrip().endswith("TF_IMPORTED=False"), r.stderr
  return r


@functools.cache
def _local(*args: str):
  """`od-guard ARGS` on local disk (once per module: both stores compare to it)."""
  return run_cli(*args)


def _uri(server, local) -> str:
  rel = os.path.relpath(str(local), str(TINY)).replace(os.sep, "/")
  return server.url(BUCKET, f"tiny/{rel}")


def _same(remote_out: str, local_out: str, server) -> None:
  """The remote run's JSON equals the local run's, paths aside."""

  def clean(value):
    if isinstance(value, dict):
      return {k: clean(v) for k, v in value.items() if not k.startswith(_VOLATILE)}
    if isinstance(value, list):
      return [clean(v) for v in value]
    return value

  text = remote_out.replace(server.url(BUCKET, "tiny"), str(TINY))
  text = text.replace(server.url(BUCKET, "users/sign_language"), str(SIGN_LANGUAGE))
  assert clean(json.loads(_untimed(text))) == clean(json.loads(_untimed(local_out)))


def _untimed(text: str) -> str:
  return re.sub(r"in \d+\.\d+ s\b", "in (time) s", text)


def _object_graph_size(prefix) -> int:
  from od_guard.checkpoint import tensor_bundle

  index = tensor_bundle.read_index(f"{prefix}.index")
  return next(e.size for e in index.entries if e.key == "_CHECKPOINTABLE_OBJECT_GRAPH")


# Response headers of the few requests that touch the shard (existence, size).
_HEADERS = 4096

INDEX_ONLY = {
  "inspect": lambda a, b: ("inspect", "--json", "--variables", a),
  "diff": lambda a, b: ("diff", "--json", a, b),
  "lint": lambda a, b: ("lint", "--json", a),
}


@pytest.mark.parametrize("kind", ["s3", "gcs"])
@pytest.mark.parametrize("command", sorted(INDEX_ONLY))
def test_index_commands_match_local_disk_and_leave_the_tensors(stores, kind, command):
  server = stores[kind]
  make = INDEX_ONLY[command]
  local = _local(*make(str(DETECTOR), str(DETECTOR_5)))
  server.served.reset()
  start = time.perf_counter()
  r = _od_guard(server, *make(_uri(server, DETECTOR), _uri(server, DETECTOR_5)))
  elapsed = time.perf_counter() - start
  assert (r.returncode, r.stdout.count("\n") > 0) == (local.returncode, True), r.stderr
  _same(r.stdout, local.stdout, server)
  shard = os.path.getsize(DETECTOR.parent / SHARD)
  fetched = server.served.bytes_for(f"detector/{SHARD}")
  # The object graph (2 KB at the shard's end) and response headers; not the tensors.
  assert fetched <= _object_graph_size(DETECTOR) + _HEADERS < shard / 4, server.served.snapshot()
  assert elapsed < 15


@pytest.fixture(scope="module")
def local_config(tmp_path_factory):
  path = tmp_path_factory.mktemp("configs") / "pipeline.config"
  path.write_text(_config_text(str(DETECTOR)))
  return path


def _config_text(checkpoint: str) -> str:
  text = EXAMPLE_CONFIG.read_text()
  return text.replace('fine_tune_checkpoint: ""', f'fine_tune_checkpoint: "{checkpoint}"')


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_check_static_with_config_and_checkpoint_on_object_storage(
  stores, kind, local_config, tmp_path
):
  server = stores[kind]
  remote_text = tmp_path / "pipeline.config"
  remote_text.write_text(_config_text(_uri(server, DETECTOR)))
  config = server.upload(str(remote_text), BUCKET, "configs/pipeline.config")
  local = _local("check", "--static", "--json", "--pipeline_config_path", str(local_config))
  r = _od_guard(server, "check", "--static", "--json", "--pipeline_config_path", config)
  assert r.returncode == local.returncode == 1, r.stderr  # the same findings: a fail
  _same(r.stdout.replace(config, str(local_config)), local.stdout, server)
  codes = [f["code"] for f in json.loads(r.stdout)["findings"]]
  assert "restore_scope_missing" in codes
  fetched = server.served.bytes_for(f"detector/{SHARD}")
  assert fetched <= _object_graph_size(DETECTOR) + _HEADERS, server.served.snapshot()


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_verify_streams_the_shard_once(stores, kind):
  server = stores[kind]
  local = _local("verify", "--json", "--tensors", str(DETECTOR))
  server.served.reset()
  r = _od_guard(server, "verify", "--json", "--tensors", _uri(server, DETECTOR))
  assert r.returncode == local.returncode, r.stderr
  _same(r.stdout, local.stdout, server)
  shard = os.path.getsize(DETECTOR.parent / SHARD)
  assert json.loads(r.stdout)["bytes_read"] == shard
  # Every tensor's bytes, each fetched once (plus response headers).
  assert shard <= server.served.bytes_for(f"detector/{SHARD}") <= shard + 2 * _HEADERS


@needs_realworld
@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_users_index_only_checkpoint(stores, kind):
  """A user's checkpoint whose data shard was never shared: the same report,
  remote or local (the missing shard said the same way)."""
  server = stores[kind]
  local_prefix = SIGN_LANGUAGE / "checkpoint" / "ckpt-0"
  remote_prefix = server.url(BUCKET, "users/sign_language/checkpoint/ckpt-0")
  local = _local("inspect", "--json", "--variables", str(local_prefix))
  r = _od_guard(server, "inspect", "--json", "--variables", remote_prefix)
  assert r.returncode == local.returncode, r.stderr
  _same(r.stdout, local.stdout, server)
  config = str(SIGN_LANGUAGE / "pipeline.config")
  local = _local("check", "--static", "--json", "--pipeline_config_path", config,
                  "--checkpoint", str(local_prefix))  # fmt: skip
  r = _od_guard(server, "check", "--static", "--json", "--pipeline_config_path", config,
                "--checkpoint", remote_prefix)  # fmt: skip
  assert r.returncode == local.returncode, r.stderr
  _same(r.stdout, local.stdout, server)


def _error(r) -> tuple[int, str]:
  m = re.search(r"od-guard: error: (\w+):", r.stderr)
  return r.returncode, m.group(1) if m else r.stderr


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_missing_bucket_and_object(stores, kind):
  server = stores[kind]
  r = _od_guard(server, "inspect", server.url("no-such-bucket", "tiny/detector/ckpt-1"))
  assert _error(r) == (2, "BucketNotFoundError")
  assert f"{server.scheme}://no-such-bucket at {server.endpoint}" in r.stderr
  r = _od_guard(server, "inspect", server.url(BUCKET, "tiny/detector/ckpt-7"))
  assert _error(r) == (2, "CheckpointNotFoundError")
  r = _od_guard(server, "verify", server.url(BUCKET, "tiny/nothing/ckpt-1.index"))
  assert r.returncode == 2, r.stderr


def _closed_port() -> int:
  import socket

  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_unreachable_endpoint_fails_fast_and_typed(stores, kind):
  server = stores[kind]
  dead = f"http://127.0.0.1:{_closed_port()}"
  var = "AWS_ENDPOINT_URL" if kind == "s3" else "STORAGE_EMULATOR_HOST"
  start = time.perf_counter()
  r = _od_guard(server, "inspect", _uri(server, DETECTOR), **{var: dead})
  assert _error(r) == (2, "EndpointUnreachableError")
  assert dead in r.stderr and var in r.stderr
  assert time.perf_counter() - start < 10


def test_s3_without_credentials(stores):
  server = stores["s3"]
  env, unset = _env(
    server,
    AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    AWS_CONFIG_FILE=os.devnull,
    AWS_EC2_METADATA_DISABLED="true",
  )
  env.pop("AWS_ACCESS_KEY_ID")
  env.pop("AWS_SECRET_ACCESS_KEY")
  r = run_cli("inspect", _uri(server, DETECTOR), check_tf=True, env=env,
              unset=(*unset, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))  # fmt: skip
  assert _error(r) == (2, "NoCredentialsError")
  assert "AWS_ACCESS_KEY_ID" in r.stderr


def test_s3_rejected_credentials(stores):
  """moto checks signatures against its IAM users when told to (no such key here)."""
  from moto import settings

  server = stores["s3"]
  before = settings.INITIAL_NO_AUTH_ACTION_COUNT
  settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
  try:
    r = _od_guard(server, "inspect", _uri(server, DETECTOR))
  finally:
    settings.INITIAL_NO_AUTH_ACTION_COUNT = before
  assert _error(r) == (2, "PermissionDeniedError"), r.stderr
  assert "AWS_ACCESS_KEY_ID" in r.stderr


# GCS credential errors are not tested: gcp-storage-emulator accepts every request (no
# authentication), so missing or rejected credentials cannot be produced against it; the
# S3 tests above cover the typed errors.
