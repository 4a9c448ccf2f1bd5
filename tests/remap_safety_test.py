"""`od-guard remap` cannot lose data: overlap through links, planted symlinks,
destination errors, crashes at every step of the commit, signals, quarantine.

TF-free (marker `plain`): the source checkpoints are written by
`support.checkpoints.write_checkpoint` with od_guard's own bundle writer (real TF2 layout:
index table, data shard, object graph; `test_generated_checkpoint_is_what_tf_reads`
checks it against TensorFlow where TensorFlow is installed). After every case
the source is byte-identical (sha256 of each of its files).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from support.checkpoints import leftovers
from support.checkpoints import state
from support.checkpoints import write_checkpoint
from support.file_digests import directory_hashes

from od_guard.checkpoint import bundle_writer
from od_guard.checkpoint import inventory
from od_guard.checkpoint import safe_output
from od_guard.checkpoint import tensor_bundle
from od_guard.naming import remap
from od_guard.naming import rules as naming_rules
from od_guard.naming import save_guard

from conftest import REPO
from conftest import run_cli

pytestmark = pytest.mark.plain

RULE = "model/a/->model/b/"


@pytest.fixture
def src(tmp_path):
  return write_checkpoint(str(tmp_path / "src" / "ckpt"), [64, 300, 7])


def _rules(text=RULE):
  return [remap.Rule.parse(text)]


def test_generated_checkpoint_is_what_tf_reads(src, tmp_path):
  tf = pytest.importorskip("tensorflow")
  dst = str(tmp_path / "d" / "ckpt")
  remap.remap(src, dst, _rules())
  before = tf.train.load_checkpoint(src)
  after = tf.train.load_checkpoint(dst)
  for key in before.get_variable_to_shape_map():
    if key != inventory.OBJECT_GRAPH_KEY:
      np.testing.assert_array_equal(
        after.get_tensor(key.replace("model/a/", "model/b/")), before.get_tensor(key)
      )


def test_symlinked_directory_reaching_the_source_is_refused(src, tmp_path):
  before = directory_hashes(tmp_path / "src")
  os.symlink(tmp_path / "src", tmp_path / "alias")
  for extra in ([], ["--overwrite"]):
    r = run_cli("remap", src, str(tmp_path / "alias" / "ckpt"), "--rule", RULE, *extra)
    assert r.returncode == 2 and "The destination is the source" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
  assert directory_hashes(tmp_path / "src") == before and leftovers(tmp_path / "src") == []


@pytest.mark.parametrize("link", ["hard", "symbolic"])
@pytest.mark.parametrize("part", ["index", "data-00000-of-00001"])
def test_destination_files_linked_to_the_source_are_refused(src, tmp_path, link, part):
  before = directory_hashes(tmp_path / "src")
  (tmp_path / "d").mkdir()
  make = os.link if link == "hard" else os.symlink
  make(f"{src}.{part}", tmp_path / "d" / f"ckpt.{part}")
  with pytest.raises(remap.RemapError) as e:
    remap.remap(src, str(tmp_path / "d" / "ckpt"), _rules(), overwrite=True)
  assert e.value.what.startswith("The destination is the source (")
  assert "is one of the source's files" in e.value.what
  assert directory_hashes(tmp_path / "src") == before


def test_same_prefix_by_another_spelling_is_refused(src, tmp_path):
  before = directory_hashes(tmp_path / "src")
  other = str(tmp_path / "src" / ".." / "src" / "." / "ckpt")
  with pytest.raises(remap.RemapError, match="The destination is the source"):
    remap.remap(src, other, _rules(), overwrite=True)
  assert directory_hashes(tmp_path / "src") == before


def test_symlink_planted_at_the_temporary_name_is_never_followed(src, tmp_path, monkeypatch):
  """The old predictable name is ignored; a name that the attacker guessed
  (here: forced) makes the exclusive create fail, typed; a planted symlink
  that looks like a dead run's leftover is removed (the link, not its
  target)."""
  before = directory_hashes(tmp_path / "src")
  d = tmp_path / "d"
  d.mkdir()
  pid = os.getpid()
  os.symlink(f"{src}.data-00000-of-00001", d / f".od_guard-{pid}-data.tmp")
  os.symlink(f"{src}.index", d / f".od_guard-{pid}-index.tmp")
  os.symlink(
    f"{src}.data-00000-of-00001", d / ".od_guard-remap-999999999-0123456789abcdef.data.tmp"
  )
  monkeypatch.setattr(safe_output, "new_token", lambda: "00000000000000aa")
  os.symlink(f"{src}.data-00000-of-00001", d / f".od_guard-remap-{pid}-00000000000000aa.data.tmp")
  with pytest.raises(safe_output.DestinationError) as e:
    remap.remap(src, str(d / "ckpt"), _rules())
  assert "Cannot create a temporary file" in e.value.what
  assert directory_hashes(tmp_path / "src") == before
  assert not (d / ".od_guard-remap-999999999-0123456789abcdef.data.tmp").is_symlink()
  os.unlink(d / f".od_guard-remap-{pid}-00000000000000aa.data.tmp")
  monkeypatch.undo()
  remap.remap(src, str(d / "ckpt"), _rules())
  assert directory_hashes(tmp_path / "src") == before
  assert os.path.islink(d / f".od_guard-{pid}-data.tmp")  # untouched, not ours
  assert state(str(d / "ckpt")) is not None


def test_destination_below_a_regular_file(src, tmp_path):
  (tmp_path / "file").write_text("x")
  r = run_cli("remap", src, str(tmp_path / "file" / "sub" / "ckpt"), "--rule", RULE)
  assert r.returncode == 2 and "Traceback" not in r.stderr
  assert "exists and is not a directory" in r.stderr


@pytest.mark.parametrize("dst", ["d", "d/"])
def test_destination_that_is_a_directory(src, tmp_path, dst):
  (tmp_path / "d").mkdir()
  r = run_cli("remap", src, str(tmp_path / dst), "--rule", RULE)
  assert r.returncode == 2 and "The destination names a directory" in r.stderr
  assert "Traceback" not in r.stderr


def test_destination_index_that_is_a_directory(src, tmp_path):
  (tmp_path / "d" / "ckpt.index").mkdir(parents=True)
  r = run_cli("remap", src, str(tmp_path / "d" / "ckpt"), "--rule", RULE, "--overwrite")
  assert r.returncode == 2 and "A directory stands where the destination's file must go" in r.stderr


def test_destination_where_nothing_may_be_created(src, tmp_path):
  before = directory_hashes(tmp_path / "src")
  for dst in ("/proc/od_guard_test/ckpt", "/sys/kernel/od_guard_test_ckpt"):
    r = run_cli("remap", src, dst, "--rule", RULE)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "DestinationError: Cannot " in r.stderr
  assert directory_hashes(tmp_path / "src") == before


def _in_private_mount(tmp_path, mount_options: str, remount_ro: bool, code: str):
  """Runs `code` (with the tmpfs at sys.argv[1]) as root of a user namespace
  with a private tmpfs; skips where user namespaces are not allowed."""
  mnt = tmp_path / "mnt"
  mnt.mkdir()
  script = f"mount -t tmpfs -o {mount_options} none {mnt}"
  if remount_ro:
    script += f" && mount -o remount,ro {mnt}"
  script += f' && exec "{sys.executable}" -c "$0" {mnt}'
  probe = subprocess.run(
    ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs none {mnt}"], capture_output=True
  )
  if probe.returncode != 0:
    pytest.skip("needs user namespaces (unshare -rm) to mount a private tmpfs")
  return subprocess.run(
    ["unshare", "-rm", "sh", "-c", script, code],
    capture_output=True,
    text=True,
    env=dict(os.environ, PYTHONPATH=str(REPO)),
    timeout=60,
  )


_CLI = "import sys\nfrom od_guard import cli\nsys.exit(cli.main(sys.argv[2:]))\n"


def test_read_only_file_system(src, tmp_path):
  if shutil.which("unshare") is None:
    pytest.skip("needs unshare")
  before = directory_hashes(tmp_path / "src")
  code = _CLI.replace(
    "sys.argv[2:]", f"['remap', {src!r}, sys.argv[1] + '/ckpt', '--rule', {RULE!r}]"
  )
  r = _in_private_mount(tmp_path, "size=1m", True, code)
  assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
  assert "Read-only file system" in r.stderr and "mounted read-only" in r.stderr
  assert directory_hashes(tmp_path / "src") == before


def test_no_space_left(tmp_path):
  if shutil.which("unshare") is None:
    pytest.skip("needs unshare")
  src = write_checkpoint(str(tmp_path / "src" / "ckpt"), [40_000, 40_000])
  before = directory_hashes(tmp_path / "src")
  code = _CLI.replace(
    "sys.argv[2:]", f"['remap', {src!r}, sys.argv[1] + '/ckpt', '--rule', {RULE!r}]"
  )
  code += ""
  code = (
    code.replace("sys.exit(", "rc = (")
    + "import os\nprint('LEFT=' + repr(os.listdir(sys.argv[1])))\nsys.exit(rc)\n"
  )
  r = _in_private_mount(tmp_path, "size=128k", False, code)
  assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
  assert "No space left on device" in r.stderr
  assert "LEFT=[]" in r.stdout  # the temporary file was removed
  assert directory_hashes(tmp_path / "src") == before


def test_keras_file_is_named_as_such(tmp_path):
  import h5py

  path = str(tmp_path / "w.h5")
  with h5py.File(path, "w") as f:
    f.attrs["layer_names"] = np.array([b"d1"])
    g = f.create_group("d1")
    g.attrs["weight_names"] = np.array([b"d1/kernel:0"])
    g.create_dataset("d1/kernel:0", data=np.zeros((4, 3), np.float32))
  before = directory_hashes(tmp_path)
  r = run_cli("remap", path, str(tmp_path / "out" / "ckpt"), "--rule", "d1->d2")
  assert r.returncode == 2 and "this is a Keras file" in r.stderr
  assert "data shard is missing" not in r.stderr and "load_weights" in r.stderr
  assert directory_hashes(tmp_path) == before


class _Crash(BaseException):
  """Stands for SIGKILL: nothing after it runs (no except, finally only)."""


def _crash_after(monkeypatch, n: int):
  """Makes the n-th name change of a commit (replace / unlink / link) crash."""
  count = [0]
  for name in ("replace", "unlink"):
    real = getattr(safe_output.Directory, name)

    def wrapped(self, *args, _real=real, **kwargs):
      count[0] += 1
      if count[0] == n:
        raise _Crash()
      return _real(self, *args, **kwargs)

    monkeypatch.setattr(safe_output.Directory, name, wrapped)
  return count


@pytest.mark.parametrize("overwrite", [False, True])
def test_crash_at_every_step_of_the_commit_is_repaired(src, tmp_path, monkeypatch, overwrite):
  """Crashes before each name change of the commit: the destination is the
  old checkpoint (or absent), the new one, or has a journal; the next run
  completes it; no temporary file is left."""
  before = directory_hashes(tmp_path / "src")
  reference = str(tmp_path / "ref" / "ckpt")
  remap.remap(src, reference, _rules())
  new = state(reference)
  step = 1
  while True:
    d = tmp_path / f"d{step}"
    dst = str(d / "ckpt")
    old = None
    if overwrite:
      remap.remap(src, dst, _rules("model/a/->model/old/"))
      os.link(reference + ".index", d / "ckpt.data-00000-of-00002")  # an old extra shard
      old = state(dst)
    count = _crash_after(monkeypatch, 10**9)
    remap.remap(src, str(tmp_path / "probe" / f"p{step}"), _rules(), overwrite=overwrite)
    steps = count[0]
    monkeypatch.undo()
    if step > steps:
      break
    _crash_after(monkeypatch, step)
    with pytest.raises(_Crash):
      remap.remap(src, dst, _rules(), overwrite=overwrite)
    monkeypatch.undo()
    journal = (d / "ckpt.od_guard-journal").exists()
    now = state(dst) if not journal else None
    assert journal or now in (old, new), (step, os.listdir(d))
    try:
      remap.remap(src, dst, _rules(), overwrite=overwrite)
      assert overwrite or (not journal and now is None)
    except remap.RemapError as e:  # completed by the repair, then "exists"
      assert not overwrite and e.what == "The destination checkpoint exists."
    assert state(dst) == new and leftovers(d) == []
    if overwrite:
      assert not (d / "ckpt.data-00000-of-00002").exists()
    assert directory_hashes(tmp_path / "src") == before
    step += 1
  assert step > 3


def test_interrupted_copy_removes_its_temporary_files(src, tmp_path):
  """SIGTERM and SIGINT during the copy: the temporary files are removed, the
  destination is untouched, and the signal then acts as it would have."""
  before = directory_hashes(tmp_path / "src")
  code = (
    "import os, signal, sys\n"
    "from od_guard.naming import remap\n"
    "sig = getattr(signal, sys.argv[3])\n"
    "remap.remap(sys.argv[1], sys.argv[2], [remap.Rule.parse('model/a/->model/b/')],\n"
    "  progress=lambda done, total: os.kill(os.getpid(), sig), progress_every=1)\n"
  )
  for name, rc in (("SIGTERM", -signal.SIGTERM), ("SIGINT", -signal.SIGINT)):
    d = tmp_path / name
    r = subprocess.run(
      [sys.executable, "-c", code, src, str(d / "ckpt"), name],
      capture_output=True,
      text=True,
      env=dict(os.environ, PYTHONPATH=str(REPO)),
      timeout=60,
    )
    assert r.returncode == rc, r.stderr
    if name == "SIGINT":
      assert "KeyboardInterrupt" in r.stderr
    assert os.listdir(d) == []
  assert directory_hashes(tmp_path / "src") == before


def test_leftovers_of_a_dead_run_are_removed_and_live_ones_kept(src, tmp_path):
  d = tmp_path / "d"
  d.mkdir()
  dead = d / ".od_guard-remap-999999999-0123456789abcdef.data.tmp"
  dead.write_bytes(b"x" * 100)
  live = d / f".od_guard-remap-{os.getppid()}-fedcba9876543210.data.tmp"
  live.write_bytes(b"y")
  result = remap.remap(src, str(d / "ckpt"), _rules())
  assert not dead.exists() and live.exists()
  assert any("removed" in n and dead.name in n for n in result.repaired)
  assert any("may belong to running process" in n for n in result.repaired)


def test_damaged_journal_is_left_alone_and_reported(src, tmp_path):
  d = tmp_path / "d"
  d.mkdir()
  (d / "other.od_guard-journal").write_text('{"schema": "od_guard.journal/1", "base": "../x"}')
  result = remap.remap(src, str(d / "ckpt"), _rules())
  assert (d / "other.od_guard-journal").exists()
  assert any("not a journal od-guard can complete" in n for n in result.repaired)


_DEEP = """
import resource, sys
from tensorboard.compat.proto import trackable_object_graph_pb2
from od_guard.naming import remap
depth = 20_000
graph = trackable_object_graph_pb2.TrackableObjectGraph()
for i in range(depth):
  graph.nodes.add().children.add(node_id=i + 1, local_name="n" if i else "model")
key = "/".join(["model"] + ["n"] * (depth - 1)) + "/.ATTRIBUTES/VARIABLE_VALUE"
graph.nodes.add().attributes.add(name="VARIABLE_VALUE", checkpoint_key=key)
new_key = "net" + key[len("model") :]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = remap.rewrite_object_graph(graph, {key: new_key})
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
assert out.nodes[0].children[0].local_name == "net"
assert out.nodes[depth].attributes[0].checkpoint_key == new_key
print(grown // 1024)
"""


def test_deep_object_graph_costs_memory_per_node_not_per_path():
  """A 20,000-node chain: the rewrite keeps one record per node (the path-per-
  node version needed gigabytes)."""
  r = subprocess.run(
    [sys.executable, "-c", _DEEP],
    capture_output=True,
    text=True,
    env=dict(os.environ, PYTHONPATH=str(REPO)),
    timeout=60,
  )
  assert r.returncode == 0, r.stderr
  assert int(r.stdout.split()[-1]) < 64, r.stdout  # MB of peak RSS growth


def test_quarantine_never_clobbers_and_survives_crashes(tmp_path, monkeypatch):
  """A taken quarantine name gives '.quarantined-2'; a crash at any step of
  the moves is completed by the next check in that directory; the state file
  never names a checkpoint that is not whole."""
  rules = naming_rules.preset("odapi")
  step = 1
  while True:
    d = tmp_path / f"q{step}"
    prefix = write_checkpoint(str(d / "ckpt-1"), [5, 6], scope="CustomExtractor")
    shutil.copy(prefix + ".index", d / "ckpt-1.quarantined.index")  # taken
    (d / "checkpoint").write_text(
      'model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n'
    )
    original = state(prefix)
    taken = directory_hashes(d)["ckpt-1.quarantined.index"]
    count = _crash_after(monkeypatch, step)
    try:
      save_guard.check_saved(prefix, rules, mode="error")
      crashed = False
    except _Crash:
      crashed = True
    except save_guard.NamingViolationError as e:
      assert e.quarantined == str(d / "ckpt-1.quarantined-2")
      crashed = False
    monkeypatch.undo()
    if crashed:
      assert state(prefix) == original or state(str(d / "ckpt-1.quarantined-2")) == original
      # the next save's check completes the move
      save_guard.recover_quarantines(str(d))
    assert state(str(d / "ckpt-1.quarantined-2")) == original
    assert not (d / "ckpt-1.index").exists() and not (d / "checkpoint").exists()
    assert directory_hashes(d)["ckpt-1.quarantined.index"] == taken
    assert leftovers(d) == []
    if not crashed:
      break
    step += 1
  assert step >= 4 and count[0] >= 1


def test_short_source_data_shard_is_typed_and_leaves_nothing(src, tmp_path):
  shard = tensor_bundle.shard_path(src, 0, 1)
  os.truncate(shard, os.path.getsize(shard) - 100)
  before = directory_hashes(tmp_path / "src")
  r = run_cli("remap", src, str(tmp_path / "d" / "ckpt"), "--rule", RULE)
  assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
  assert "data shard" in r.stderr
  assert not (tmp_path / "d").exists() or os.listdir(tmp_path / "d") == []
  assert directory_hashes(tmp_path / "src") == before


def test_tensor_beyond_the_source_shard_is_typed_and_leaves_nothing(src, tmp_path):
  import dataclasses

  from od_guard import errors

  index = tensor_bundle.read_index(src + ".index")
  bad = dataclasses.replace(
    index,
    entries=tuple(e._replace(offset=1 << 40) if "/w1/" in e.key else e for e in index.entries),
  )
  (tmp_path / "d").mkdir()
  with pytest.raises(errors.CorruptCheckpointError) as e:
    bundle_writer.copy_bundle(src, bad, str(tmp_path / "d" / "ckpt"), {})
  assert e.value.what.startswith("The data shard ") and "end early" in e.value.what
  assert os.listdir(tmp_path / "d") == []
