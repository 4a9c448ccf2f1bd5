"""Reports and TensorBoard servers for the dashboard's tests and benchmark.

`synthetic_report` builds a preflight report of any size from od_guard's own
records (no TensorFlow), optionally with hostile names; `TensorBoardServer`
runs a real TensorBoard on 127.0.0.1 over a logdir, in a subprocess, and waits
until the od_guard plugin serves the runs it should.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

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
          path, path + "/.ATTRIBUTES/VARIABLE_VALUE", "(3, 3, 16, 32)", str(shape), component
        )
      )
    elif component == "backbone" and (i * 7919 % 1000) < renamed_fraction * 1000:
      missing.append(matching.Unbound(path, shape, "float32", component))
      unused.append(path.replace("_feature_extractor", "CustomExtractor") + "/.ATTRIBUTES/VARIABLE_VALUE")
    else:
      restored.append(
        matching.Binding(path, path + "/.ATTRIBUTES/VARIABLE_VALUE", shape, "float32", component)
      )
      tally[0] += params
      tally[2] += 1
  if hostile:
    for j, name in enumerate(HOSTILE_NAMES):
      missing.append(matching.Unbound(f"{HOSTILE_SCOPE}/{name}", (4,), "float32", "box_head"))
      unused.append(f"model/{name}/.ATTRIBUTES/VARIABLE_VALUE")
      restored.append(
        matching.Binding(f"model/extra_{j}/{name}", f"model/extra_{j}/{name}/x", (2,), "float32", "other")
      )
  restore = matching.RestoreReport(
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
            {"old": "model/CustomExtractor/", "new": "model/_feature_extractor/", "count": len(missing)}
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
        "hostile_text",
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
    self._log_path = os.path.join(os.path.dirname(os.path.abspath(logdir)), f"tensorboard-{self.port}.log")
    self._log = open(self._log_path, "w")  # noqa: SIM115  closed in stop()
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
    raise TimeoutError(f"TensorBoard did not list the runs {sorted(expected)}; last: {last}\n{self.log()}")

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
