"""Reports and TensorBoard servers for the dashboard's tests and benchmark.

`synthetic_report` builds a preflight report of any size from od_guard's own
records (no TensorFlow), optionally with hostile names; `TensorBoardServer`
runs a real TensorBoard on 127.0.0.1 over a logdir, in a subprocess, and waits
until the od_guard plugin serves the runs it should.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any
import urllib.error
import urllib.request

from od_guard.checkpoint import keys as checkpoint_keys
from od_guard.report import record
from od_guard.restore import findings as findings_lib
from od_guard.restore import fingerprint as fingerprint_lib
from od_guard.restore import matching
from od_guard.restore import policy as policy_lib

HOSTILE_NAMES = (
  "<img src=x onerror=alert(1)>",
  '"><script>alert(2)</script>',
  "javascript:alert(3)",
  "{{constructor.constructor('alert(4)')()}}",
)
# Where a hostile name sits in the scope tree (a '/' would split it).
HOSTILE_SCOPE = "model/_box_predictor/<b onmouseover=alert(5)>head"


def _components(i: int) -> tuple[str, str]:
  if i % 10 < 7:
    return "model/_feature_extractor", "backbone"
  if i % 10 < 9:
    return "model/_feature_extractor/fpn", "neck"
  return "model/_box_predictor", "box_head"


def synthetic_report(
  num_variables: int,
  *,
  hostile: bool = False,
  renamed_fraction: float = 0.0,
  config_path: str = "/work/configs/pipeline.config",
  checkpoint: str = "/work/pretrained/ckpt-0",
) -> record.Report:
  """A model-tier preflight report over `num_variables` variables.

  Most variables restore; with `renamed_fraction`, that share of the backbone
  is missing (its checkpoint scope renamed, with the rename map in a finding);
  every 97th variable has a shape mismatch, every 50th is not requested, and
  the checkpoint holds a few unused values. With `hostile`, variable names,
  the config path, the checkpoint path and a finding carry HTML and script.
  """
  restored, missing, not_requested, mismatches, unused = [], [], [], [], []
  coverage: dict[str, list[int]] = {}
  for i in range(num_variables):
    scope, component = _components(i)
    block, layer = divmod(i // 4, 16)
    name = ("kernel", "bias", "gamma", "beta")[i % 4]
    path = f"{scope}/block_{block}/layer_{layer}/{name}"
    shape = (3, 3, 32, 32) if name == "kernel" else (32,)
    params = 1
    for d in shape:
      params *= d
    tally = coverage.setdefault(component, [0, 0, 0, 0])
    tally[1] += params
    tally[3] += 1
    if i % 50 == 49:
      not_requested.append(matching.Unbound(path, shape, "float32", component))
    elif i % 97 == 96:
      mismatches.append(
        matching.Mismatch(
          path, checkpoint_keys.checkpoint_key(path), (3, 3, 16, 32), shape, component
        )
      )
    elif component == "backbone" and (i * 7919 % 1000) < renamed_fraction * 1000:
      missing.append(matching.Unbound(path, shape, "float32", component))
      unused.append(
        checkpoint_keys.checkpoint_key(path.replace("_feature_extractor", "CustomExtractor"))
      )
    else:
      restored.append(
        matching.Binding(path, checkpoint_keys.checkpoint_key(path), shape, "float32", component)
      )
      tally[0] += params
      tally[2] += 1
  if hostile:
    for j, name in enumerate(HOSTILE_NAMES):
      missing.append(matching.Unbound(f"{HOSTILE_SCOPE}/{name}", (4,), "float32", "box_head"))
      unused.append(checkpoint_keys.checkpoint_key(f"model/{name}"))
      restored.append(
        matching.Binding(
          f"model/extra_{j}/{name}", f"model/extra_{j}/{name}/x", (2,), "float32", "other"
        )
      )
  restore = matching.RestorePrediction(
    mode="object_graph",
    restored=tuple(restored),
    missing=tuple(missing),
    not_requested=tuple(not_requested),
    unused=tuple(unused),
    unused_other=("optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE",),
    shape_mismatches=tuple(mismatches),
    dtype_mismatches=(),
    coverage=tuple(matching.Coverage(c, *t) for c, t in sorted(coverage.items())),
    unmatched_objects=len(missing),
  )
  found = []
  if missing:
    found.append(
      findings_lib.Finding(
        "renamed_scopes",
        findings_lib.ERROR,
        f"{len(missing)} variables are saved under other names: the checkpoint's scopes were renamed.",
        detail="model/CustomExtractor/ -> model/_feature_extractor/",
        fix="Rewrite the checkpoint's names with this map: 'model/CustomExtractor/' -> "
        "'model/_feature_extractor/' (od-guard remap SRC DST --from-report report.json).",
        stock_outcome="AssertionError: Found N Python objects that were not bound to checkpointed values",
        data={
          "renames": [
            {
              "old": "model/CustomExtractor/",
              "new": "model/_feature_extractor/",
              "count": len(missing),
            }
          ]
        },
      )
    )
  if mismatches:
    found.append(
      findings_lib.Finding(
        "shape_mismatch",
        findings_lib.WARNING,
        f"{len(mismatches)} variables have other shapes in the checkpoint.",
        fix="Check num_classes and the head's depth.",
      )
    )
  if hostile:
    found.append(
      findings_lib.Finding(
        "label_map_invalid",  # a registered code, with markup for text
        findings_lib.WARNING,
        f"A finding whose text is markup: {HOSTILE_NAMES[0]} {HOSTILE_NAMES[1]}",
        detail=HOSTILE_NAMES[2],
        fix=HOSTILE_NAMES[3],
      )
    )
  found.append(findings_lib.Finding("not_requested", findings_lib.INFO, "Heads start fresh."))
  policy = policy_lib.preset("default")
  errors = [f for f in found if f.severity == findings_lib.ERROR]
  decision = policy_lib.FAIL if errors else (policy_lib.WARN if mismatches else policy_lib.PASS)
  return record.Report(
    tier=record.MODEL,
    config={
      "path": config_path,
      "meta_architecture": "ssd",
      "feature_extractor_type": "ssd_mobilenet_v2_fpn_keras",
      "num_classes": 3,
      "fine_tune_checkpoint": checkpoint,
      "fine_tune_checkpoint_type": "detection",
    },
    checkpoint=None,
    fingerprint=fingerprint_lib.Fingerprint(
      checkpoint_kind="detection",
      root_objects=("model",),
      meta_architecture="ssd",
      backbone="mobilenet_v2",
      neck="fpnlite",
      feature_extractor_types=("ssd_mobilenet_v2_fpn_keras",),
      evidence=("synthetic",),
    ),
    restore=restore,
    findings=tuple(findings_lib.by_severity(found)),
    verdict=policy_lib.Verdict(decision, tuple(f.title for f in errors), policy),
    timings={"match": 0.1},
    strategy="synthetic",
  )


HOSTILE_RUN = "hostile_<img src=x onerror=alert(6)>"
NAMING_STEPS = tuple(range(100, 1300, 100))  # 12 saves: more than TensorBoard's default 10


class _Violation:
  def __init__(self, path: str, rule: str, message: str):
    self.key = checkpoint_keys.checkpoint_key(path)
    self.path = path
    self.rule = rule
    self.message = message


def write_tf_free_runs(logdir: str) -> dict:
  """Writes the hostile run with od_guard's TF-free writer; returns what was written.

  Run in a fresh interpreter (`python -m support.dashboard_runs
  tf_free LOGDIR`): the result says whether TensorFlow got imported.
  """
  from od_guard.report import tensorboard

  run = os.path.join(logdir, HOSTILE_RUN)
  report = synthetic_report(
    120,
    hostile=True,
    renamed_fraction=0.5,
    config_path=f"/configs/{HOSTILE_NAMES[0]}/pipeline.config",
    checkpoint=f"/ckpt/{HOSTILE_NAMES[1]}",
  )
  tensorboard.write(report, run, step=0)
  for i, step in enumerate(NAMING_STEPS):
    violations = [
      _Violation(
        f"model/{HOSTILE_NAMES[j % len(HOSTILE_NAMES)]}/v{j}", rule, f"{rule}: {HOSTILE_NAMES[0]}"
      )
      for j, rule in enumerate(["forbidden"] * (i % 3 + 1) + ["charset"] * (i % 2))
    ]
    tensorboard.write_naming(violations, f"/ckpt/{HOSTILE_NAMES[1]}-{step}", run, step=step)
  return {
    "run": HOSTILE_RUN,
    "report": report.to_dict(),
    "tensorflow_imported": "tensorflow" in sys.modules,
  }


def write_keras_runs(logdir: str) -> dict:
  """Two Keras fits with the restore guard: one restores, one whose feature
  layer was renamed (stopped before the first batch). Keras 3 where it is
  installed, tf-keras otherwise. Returns the runs and their reports."""
  import numpy as np
  import tensorflow as tf

  from od_guard.keras import callbacks
  from od_guard.keras import guarded_restore

  try:
    import keras

    keras3 = int(keras.__version__.split(".")[0]) >= 3
  except ImportError:
    keras3 = False
  if keras3:
    guard_class = callbacks.RestoreGuard
  else:
    import tf_keras as keras

    guard_class = callbacks.TfKerasRestoreGuard

  def make(features: str = "features"):
    class TinyNet(keras.Model):
      def __init__(self):
        super().__init__()
        setattr(self, features, keras.layers.Dense(8, activation="relu"))
        self.classifier = keras.layers.Dense(3)

      def call(self, x):
        return self.classifier(getattr(self, features)(x))

    model = TinyNet()
    model.compile(optimizer="sgd", loss="mse")
    return model

  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 4)).astype("float32")
  y = rng.normal(size=(8, 3)).astype("float32")
  saved = make()
  saved.fit(x, y, epochs=1, verbose=0)
  prefix = tf.train.Checkpoint(model=saved).save(
    os.path.join(logdir, "..", "keras_pretrained", "ckpt")
  )
  out = {"checkpoint": prefix, "flavour": "keras3" if keras3 else "tf_keras", "runs": {}}
  for name, features in (("keras_good", "features"), ("keras_renamed", "encoder")):
    log_dir = os.path.join(logdir, name)
    report_path = os.path.join(logdir, "..", f"{name}.json")
    guard = guard_class(
      prefix, input_shape=(None, 4), log_dir=log_dir, quiet=True, report_path=report_path
    )
    # The renamed one stops before the first batch.
    with contextlib.suppress(guarded_restore.RestoreGuardError):
      make(features).fit(
        x, y, epochs=1, verbose=0, callbacks=[guard, keras.callbacks.TensorBoard(log_dir)]
      )
    with open(report_path) as f:
      out["runs"][f"{name}/train"] = json.load(f)
  return out


VERIFY_RUN = "keras_verify"


def write_verification_run(logdir: str, checkpoint: str) -> dict:
  """Verifies `checkpoint` (od_guard.checkpoint.verify: every tensor's CRC and
  values, no TensorFlow) and writes the result with the TF-free writer. Run in
  a fresh interpreter; the result says whether TensorFlow got imported."""
  from od_guard.checkpoint import verify
  from od_guard.report import tensorboard

  result = verify.verify(checkpoint)
  tensorboard.write_verification(result, os.path.join(logdir, VERIFY_RUN), step=1)
  return {
    "run": VERIFY_RUN,
    "report": result.to_dict(),
    "tensorflow_imported": "tensorflow" in sys.modules,
  }


def build_logdir(
  root: str, *, odapi_world: Callable[[], Any] | None = None, timeout: float = 600.0
) -> dict:
  """Writes every run the dashboard's tests read, once per `root`.

  Runs, written concurrently in fresh interpreters: the hostile run (the
  TF-free writer), two Keras fits, and with `odapi_world` (tests/conftest.py's
  OdapiWorld) two real `python -m od_guard.model_main_tf2` runs (a good
  fine-tune that trains two steps with naming rules in warn mode, and a
  renamed-scope checkpoint stopped before step one) and `od-guard check
  --static --tensorboard_dir` (TF-free). `odapi_world` is called once the
  other runs have started (building it takes a while too).

  Returns:
    {"logdir": ..., "runs": {run: {"decision", "report"?}}, "tf_free": bool,
    "keras": {...}, "odapi": {...} or None}.
  """
  done = os.path.join(root, "logdir.json")
  if os.path.exists(done):
    with open(done) as f:
      return json.load(f)
  logdir = os.path.join(root, "logs")
  os.makedirs(logdir, exist_ok=True)
  # `-m support.dashboard_runs` needs tests/ on the path, beside od_guard's checkout.
  pythonpath = os.pathsep.join(
    [_repo_root(), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
  )
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=pythonpath)
  jobs: dict[str, subprocess.Popen] = {}
  started: dict[str, float] = {}
  seconds: dict[str, float] = {}

  def start(name: str, *args: str) -> None:
    started[name] = time.time()
    jobs[name] = subprocess.Popen(
      [sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

  out_tf_free = os.path.join(root, "tf_free.json")
  out_keras = os.path.join(root, "keras.json")
  start("tf_free", "-m", __name__, "tf_free", logdir, out_tf_free)
  start("keras", "-m", __name__, "keras", logdir, out_keras)
  odapi = None
  if odapi_world is not None:
    t = time.time()
    odapi_world = odapi_world()
    seconds["odapi_world"] = time.time() - t
    rules = os.path.join(root, "naming_rules.toml")
    with open(rules, "w") as f:
      f.write('extends = ["odapi"]\n[rules]\nforbidden = ["^model/_box_predictor/"]\n')
    good = odapi_world.write_config("dashboard_good")
    renamed = odapi_world.write_config(
      "dashboard_renamed", checkpoint=odapi_world.checkpoints["renamed"]
    )
    odapi = {"good_config": good, "renamed_config": renamed, "checkpoints": odapi_world.checkpoints}
    drop_in = ["-m", "od_guard.model_main_tf2"]
    start(
      "odapi_good",
      *drop_in,
      f"--pipeline_config_path={good}",
      f"--model_dir={os.path.join(logdir, 'odapi_good')}",
      "--num_train_steps=2",
      "--num_steps_per_iteration=1",
      "--checkpoint_every_n=1",
      "--guard_naming_mode=warn",
      f"--guard_naming_rules={rules}",
    )
    start(
      "odapi_renamed",
      *drop_in,
      f"--pipeline_config_path={renamed}",
      f"--model_dir={os.path.join(logdir, 'odapi_renamed')}",
    )
    code = (
      "import sys\nfrom od_guard import cli\nrc = cli.main(sys.argv[1:])\n"
      "print('TF_IMPORTED=' + str('tensorflow' in sys.modules), file=sys.stderr)\nsys.exit(rc)\n"
    )
    start(
      "odapi_static",
      "-c",
      code,
      "check",
      "--static",
      "--json",
      "--pipeline_config_path",
      good,
      "--tensorboard_dir",
      os.path.join(logdir, "odapi_static"),
    )
  results = {}
  for name, job in jobs.items():
    stdout, stderr = job.communicate(timeout=timeout)
    results[name] = (job.returncode, stdout, stderr)
    seconds[name] = time.time() - started[name]  # an upper bound: waited in order
  expected_codes = {"odapi_good": 0, "odapi_renamed": 1, "odapi_static": 0}
  for name, (rc, stdout, stderr) in results.items():
    if rc != expected_codes.get(name, 0):
      raise RuntimeError(f"{name} exited with {rc}:\n{stdout[-2000:]}\n{stderr[-4000:]}")
  with open(out_tf_free) as f:
    tf_free = json.load(f)
  with open(out_keras) as f:
    keras_runs = json.load(f)
  out_verify = os.path.join(root, "verify.json")
  start("verify", "-m", __name__, "verify", logdir, out_verify, keras_runs["checkpoint"])
  stdout, stderr = jobs["verify"].communicate(timeout=timeout)
  if jobs["verify"].returncode != 0:
    raise RuntimeError(f"verify exited with {jobs['verify'].returncode}:\n{stderr[-4000:]}")
  with open(out_verify) as f:
    verified = json.load(f)
  runs = {tf_free["run"]: {"report": tf_free["report"]}}
  runs[verified["run"]] = {"report": verified["report"], "kind": "verification"}
  for name, report in keras_runs["runs"].items():
    runs[name] = {"report": report}
  if odapi is not None:
    for name in ("odapi_good", "odapi_renamed"):
      with open(os.path.join(logdir, name, "od_guard", "report.json")) as f:
        runs[f"{name}/train"] = {"report": json.load(f)}
    runs["odapi_static"] = {"report": json.loads(results["odapi_static"][1])}
    odapi["static_tf_imported"] = "TF_IMPORTED=True" in results["odapi_static"][2]
  for entry in runs.values():
    if entry.get("kind") == "verification":
      entry["decision"] = "pass" if entry["report"]["healthy"] else "fail"
    else:
      entry["decision"] = entry["report"]["verdict"]["decision"]
  result = {
    "logdir": logdir,
    "runs": runs,
    "tf_free": not (tf_free["tensorflow_imported"] or verified["tensorflow_imported"]),
    "keras": {k: v for k, v in keras_runs.items() if k != "runs"},
    "odapi": odapi,
    "seconds": {k: round(v, 1) for k, v in seconds.items()},
  }
  with open(done, "w") as f:
    json.dump(result, f)
  return result


def _repo_root() -> str:
  import od_guard

  return os.path.dirname(os.path.dirname(os.path.abspath(od_guard.__file__)))


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class TensorBoardServer:
  """A real TensorBoard on 127.0.0.1 over `logdir` (a subprocess).

  Args:
    logdir: the directory of runs.
    load_fast: TensorBoard's --load_fast ('auto' uses the Rust data server
      when it is installed; 'false' the Python multiplexer).
    python: the interpreter (default: this one).
  """

  def __init__(self, logdir: str, *, load_fast: str = "auto", python: str = sys.executable):
    self.logdir = logdir
    self.port = free_port()
    self.url = f"http://127.0.0.1:{self.port}"
    self._log_path = os.path.join(
      os.path.dirname(os.path.abspath(logdir)), f"tensorboard-{self.port}.log"
    )
    self._log = open(self._log_path, "w")
    self.process = subprocess.Popen(
      [
        python,
        "-m",
        "tensorboard.main",
        f"--logdir={logdir}",
        "--host=127.0.0.1",
        f"--port={self.port}",
        f"--load_fast={load_fast}",
        "--reload_interval=1",
      ],
      stdout=self._log,
      stderr=subprocess.STDOUT,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )

  def get(self, path: str, *, gzip: bool = False) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a GET on `path` (e.g. '/data/plugin/od_guard/runs')."""
    request = urllib.request.Request(self.url + path)
    if gzip:
      request.add_header("Accept-Encoding", "gzip")
    try:
      with urllib.request.urlopen(request, timeout=60) as r:
        return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
      return e.code, dict(e.headers), e.read()

  def get_json(self, path: str):
    status, _, body = self.get(path)
    if status != 200:
      raise AssertionError(f"GET {path}: HTTP {status}: {body[:500]!r}")
    return json.loads(body)

  def wait_for_runs(self, expected: set[str], timeout: float = 90.0) -> list[dict]:
    """Waits until the plugin lists every run in `expected`; returns /runs."""
    deadline = time.time() + timeout
    last: object = None
    while time.time() < deadline:
      if self.process.poll() is not None:
        raise RuntimeError(f"TensorBoard exited with {self.process.returncode}:\n{self.log()}")
      try:
        runs = self.get_json("/data/plugin/od_guard/runs")["runs"]
        last = [r["run"] for r in runs]
        if expected <= set(last):
          return runs
      except (OSError, AssertionError) as e:
        last = e
      time.sleep(0.3)
    raise TimeoutError(
      f"TensorBoard did not list the runs {sorted(expected)}; last: {last}\n{self.log()}"
    )

  def log(self) -> str:
    self._log.flush()
    with open(self._log_path) as f:
      return f.read()[-4000:]

  def stop(self) -> None:
    if self.process.poll() is None:
      self.process.terminate()
      try:
        self.process.wait(timeout=10)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()
    self._log.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.stop()


def main(argv: list[str]) -> int:
  """`python -m support.dashboard_runs tf_free|keras|verify LOGDIR OUT_JSON [CKPT]`."""
  what, logdir, out, *rest = argv
  writers = {
    "tf_free": write_tf_free_runs,
    "keras": write_keras_runs,
    "verify": write_verification_run,
  }
  result = writers[what](logdir, *rest)
  with open(out, "w") as f:
    json.dump(result, f)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
