"""`od-guard doctor`: is this environment one the TF2 OD API runs in?

Checks the version drift that breaks the OD API long before any checkpoint is
read: TF / Keras / tf-keras / protobuf / OD API versions, Keras 3 active where
the OD API needs tf-keras, `tf.estimator` gone (TF >= 2.16), tf-slim's
`control_flow_ops.case/cond` gone (TF >= 2.13), and the OD API's protoc-3
generated protos under protobuf >= 4. Versions come from package metadata, so
the checks import neither TensorFlow nor the OD API; `deep=True` also imports
model_lib_v2 in a subprocess and reports the real error.

Given the paths training will use (`pipeline_config_path`, its
fine_tune_checkpoint and input files, `model_dir`), the doctor also says
whether TensorFlow itself can read their storage: TF's own file systems are
local disk, ``gs://`` and ``ram://``; ``s3://``, ``hdfs://``, ``az://`` and
``http(s)://`` need tensorflow-io, imported by the training process (od_guard's
own TF-free commands read any fsspec protocol, see `checkpoint/remote.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys

from od_guard import _records
from od_guard import errors
from od_guard.checkpoint import remote
from od_guard.restore import findings

SCHEMA = "od_guard.doctor/1"
OK = "ok"


@dataclasses.dataclass(frozen=True)
class Check(_records.Record):
  name: str
  status: str  # OK, or a findings severity
  found: str
  fix: str = ""


@dataclasses.dataclass(frozen=True)
class DoctorReport:
  versions: dict[str, str | None]
  checks: tuple[Check, ...]

  @property
  def ok(self) -> bool:
    return all(c.status != findings.ERROR for c in self.checks)

  def to_dict(self) -> dict:
    return {
      "schema": SCHEMA,
      "ok": self.ok,
      "python": sys.version.split()[0],
      "versions": self.versions,
      "checks": [c.to_dict() for c in self.checks],
    }


def _version(dist: str) -> str | None:
  try:
    return importlib.metadata.version(dist)
  except importlib.metadata.PackageNotFoundError:
    return None


def _tuple(version: str | None) -> tuple[int, ...]:
  if not version:
    return ()
  return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


_PACKAGES = {
  "tensorflow": ("tensorflow", "tensorflow-cpu", "tf-nightly"),
  "keras": ("keras",),
  "tf-keras": ("tf-keras", "tf_keras"),
  "protobuf": ("protobuf",),
  "tf-models-official": ("tf-models-official",),
  "object-detection": ("tf-models-research-object-detection", "object-detection"),
  "tf-slim": ("tf-slim",),
  "tensorflow-estimator": ("tensorflow-estimator",),
  "tensorflow-io": ("tensorflow-io",),
  "tensorboard": ("tensorboard",),
}


def _versions() -> dict[str, str | None]:
  out = {}
  for name, dists in _PACKAGES.items():
    out[name] = next((v for v in map(_version, dists) if v), None)
  return out


def _protos_load() -> tuple[bool, str]:
  if importlib.util.find_spec("object_detection") is None:
    return False, "not installed"
  try:
    from object_detection.protos import string_int_label_map_pb2  # noqa: F401  protobuf only
  except Exception as e:  # pylint: disable=broad-except  # any failure is the finding
    return False, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
  return True, "imports"


def run(
  *,
  deep: bool = False,
  environ: dict | None = None,
  pipeline_config_path: str | None = None,
  model_dir: str | None = None,
  paths: Sequence[str] = (),
) -> DoctorReport:
  """Runs the checks.

  Args:
    deep: also import object_detection.model_lib_v2 in a subprocess (5-15 s)
      and report the error it raises, if any.
    environ: environment variables to judge (default: os.environ).
    pipeline_config_path: the config training will use: its own path, its
      fine_tune_checkpoint and its input files are checked for storage TF can
      read (the config is read without TensorFlow).
    model_dir: the training output directory, checked the same way.
    paths: more paths training will read or write.
  """
  env = os.environ if environ is None else environ
  v = _versions()
  tf_v, keras_v, tfk_v, pb_v = (
    _tuple(v["tensorflow"]),
    _tuple(v["keras"]),
    _tuple(v["tf-keras"]),
    _tuple(v["protobuf"]),
  )
  odapi = v["object-detection"]
  legacy = env.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true", "yes")
  checks: list[Check] = [Check("python", OK, sys.version.split()[0])]
  if not tf_v:
    checks.append(
      Check(
        "tensorflow",
        findings.ERROR,
        "not installed",
        "pip install tensorflow==2.15.1 (the OD API's tested pairing)",
      )
    )
  else:
    checks.append(Check("tensorflow", OK, v["tensorflow"]))
  if odapi is None:
    checks.append(
      Check(
        "object_detection",
        findings.WARNING,
        "not installed",
        "pip install tf-models-research-object-detection==2.8.0.post1 "
        "protobuf==3.20.3 (only needed for OD API training and checks)",
      )
    )
  else:
    checks.append(Check("object_detection", OK, odapi))
  if odapi and tf_v >= (2, 16):
    keras3 = keras_v >= (3,)
    if keras3 and not legacy:
      fix = (
        "pip install tf-keras=={}.* and export TF_USE_LEGACY_KERAS=1".format(
          ".".join(map(str, tf_v[:2]))
        )
        if not tfk_v
        else "export TF_USE_LEGACY_KERAS=1"
      )
      checks.append(
        Check(
          "keras",
          findings.ERROR,
          f"Keras {v['keras']} is tf.keras (TF {v['tensorflow']}); the OD API needs Keras 2 "
          "(tf-keras)",
          fix + "  (without it: AttributeError: module 'keras._tf_keras.keras.layers' has no "
          "attribute 'experimental')",
        )
      )
    elif keras3 and legacy and not tfk_v:
      checks.append(
        Check(
          "keras",
          findings.ERROR,
          "TF_USE_LEGACY_KERAS=1 but tf-keras is not installed",
          f"pip install tf-keras=={'.'.join(map(str, tf_v[:2]))}.*",
        )
      )
    else:
      checks.append(
        Check(
          "keras",
          OK,
          f"{v['keras']} (tf-keras {v['tf-keras']}, "
          f"TF_USE_LEGACY_KERAS={'1' if legacy else 'unset'})",
        )
      )
  elif keras_v:
    checks.append(Check("keras", OK, v["keras"]))
  if odapi and tf_v >= (2, 16) and not v["tensorflow-estimator"]:
    checks.append(
      Check(
        "tf.estimator",
        findings.ERROR,
        f"TF {v['tensorflow']} has no tf.estimator (removed in 2.16); "
        "object_detection/inputs.py imports it, and model_lib_v2 imports inputs",
        "Use TensorFlow 2.15 for the OD API (the odapi environment: TF 2.15.1, Keras 2)",
      )
    )
  if odapi and tf_v >= (2, 13) and v["tf-slim"]:
    checks.append(
      Check(
        "tf_slim.control_flow_ops",
        findings.WARNING,
        f"tf-slim {v['tf-slim']} calls control_flow_ops.case/cond, moved in TF 2.13 "
        f"(you have {v['tensorflow']}): stock model_main_tf2 fails at the first step with "
        "AttributeError: module 'tensorflow.python.ops.control_flow_ops' has no attribute 'case'",
        "Train with `python -m od_guard.model_main_tf2` (or `python -m od_guard.odapi_compat "
        "object_detection.model_main_tf2`), which alias them in-process; no file is edited",
      )
    )
  if odapi:
    loads, why = _protos_load()
    if not loads:
      checks.append(
        Check(
          "object_detection.protos",
          findings.ERROR,
          f"the OD API's *_pb2.py files (protoc-3 generated) do not load under protobuf "
          f"{v['protobuf']}: {why}",
          "pip install protobuf==3.20.3, or regenerate the protos with protoc >= 21",
        )
      )
    else:
      checks.append(Check("object_detection.protos", OK, f"load under protobuf {v['protobuf']}"))
    if tf_v >= (2, 16) and not v["tensorflow-io"]:
      checks.append(
        Check(
          "tensorflow_io",
          findings.WARNING,
          "not installed; deepmac_meta_arch imports it",
          "pip install tensorflow-io matching your TF, if you train DeepMAC models",
        )
      )
  elif pb_v:
    checks.append(Check("protobuf", OK, v["protobuf"]))
  if pipeline_config_path or model_dir or paths:
    checks.extend(storage_checks(training_paths(pipeline_config_path, model_dir, paths), v, env))
  if deep and odapi:
    checks.append(_deep_import())
  return DoctorReport(versions=v, checks=tuple(checks))


# File systems TensorFlow (>= 2.6) has built in; what tensorflow-io adds on import.
TF_SCHEMES = ("", "file", "gs", "ram")
TFIO_SCHEMES = ("s3", "hdfs", "az", "http", "https")


def training_paths(
  pipeline_config_path: str | None, model_dir: str | None, paths: Sequence[str] = ()
) -> list[tuple[str, str]]:
  """(what, path) for every path training reads or writes; a config that
  cannot be read is reported as the path ("!" + the error's text)."""
  out: list[tuple[str, str]] = []
  if pipeline_config_path:
    out.append(("--pipeline_config_path", pipeline_config_path))
    from od_guard.odapi import config as pipeline_config

    try:
      cfg = pipeline_config.read(pipeline_config_path)
    except errors.OdGuardError as e:
      out.append(("!pipeline config", e.what))
    else:
      if cfg.fine_tune_checkpoint:
        out.append(("fine_tune_checkpoint", cfg.fine_tune_checkpoint))
      for reader in [r for r in (cfg.train_input, *cfg.eval_inputs) if r is not None]:
        out.extend((f"{reader.role}.input_path", p) for p in reader.input_paths)
        if reader.label_map_path:
          out.append((f"{reader.role}.label_map_path", reader.label_map_path))
  if model_dir:
    out.append(("--model_dir", model_dir))
  out.extend(("path", p) for p in paths)
  return out


def storage_checks(
  paths: Sequence[tuple[str, str]], versions: dict[str, str | None], environ
) -> list[Check]:
  """Can TensorFlow (which training uses) read each path's storage?"""
  checks: list[Check] = []
  by_scheme: dict[str, list[str]] = {}
  for what, path in paths:
    if what.startswith("!"):
      checks.append(
        Check("storage", findings.WARNING, f"{what[1:]}: {path}", "paths in it were not checked")
      )
      continue
    by_scheme.setdefault(remote.scheme(path), []).append(what)
  tf_v = _tuple(versions.get("tensorflow"))
  tfio = versions.get("tensorflow-io")
  for scheme, whats in sorted(by_scheme.items()):
    name = f"storage {scheme}://" if scheme else "storage (local paths)"
    used = ", ".join(dict.fromkeys(whats))
    if scheme in TF_SCHEMES or (scheme in ("s3", "hdfs") and tf_v and tf_v < (2, 6)):
      checks.append(Check(name, OK, f"TensorFlow reads it ({used})"))
    elif scheme in TFIO_SCHEMES and tfio:
      checks.append(
        Check(
          name,
          findings.WARNING,
          f"TensorFlow {versions.get('tensorflow')} reads {scheme}:// only through "
          f"tensorflow-io {tfio}, once `import tensorflow_io` has run in the training "
          f"process ({used})",
          "Make the training script `import tensorflow_io` before it reads these paths"
          + (
            "; tensorflow-io's S3 reads S3_ENDPOINT (not AWS_ENDPOINT_URL): set it too"
            if scheme == "s3" and environ.get("AWS_ENDPOINT_URL") and not environ.get("S3_ENDPOINT")
            else ""
          ),
        )
      )
    elif scheme in TFIO_SCHEMES:
      checks.append(
        Check(
          name,
          findings.ERROR,
          f"TensorFlow {versions.get('tensorflow') or '(not installed)'} cannot read "
          f"{scheme}:// without tensorflow-io (UnimplementedError: File system scheme "
          f"'{scheme}' not implemented), and training uses it: {used}",
          "pip install tensorflow-io matching your TF and `import tensorflow_io` in the "
          "training process, or copy the files to local disk or gs://",
        )
      )
    else:
      fix = (
        'use "gs://" (TensorFlow\'s name for Cloud Storage)'
        if scheme == "gcs"
        else ("copy the files to local disk or gs://")
      )
      checks.append(
        Check(
          name,
          findings.ERROR,
          f"TensorFlow has no file system for {scheme}:// (UnimplementedError), and "
          f"training uses it: {used}",
          fix[0].upper() + fix[1:],
        )
      )
    if scheme and scheme not in ("file", "ram") and not remote.serves(f"{scheme}://"):
      checks.append(
        Check(
          f"od_guard {scheme}://",
          findings.WARNING,
          "od_guard's TF-free commands (inspect, diff, lint, check --static, verify) "
          f"cannot read {scheme}:// here without TensorFlow",
          remote.install_hint(f"{scheme}://"),
        )
      )
  return checks


def _deep_import() -> Check:
  code = "import od_guard.odapi_compat as c; c.apply(); from object_detection import model_lib_v2"
  try:
    r = subprocess.run(
      [sys.executable, "-c", code],
      capture_output=True,
      text=True,
      timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
  except subprocess.TimeoutExpired:
    return Check(
      "import model_lib_v2",
      findings.ERROR,
      "timed out after 300 s",
      "Run `python -c 'from object_detection import model_lib_v2'` to see where",
    )
  if r.returncode == 0:
    return Check("import model_lib_v2", OK, "imports (with od_guard's tf-slim aliases)")
  last = [l for l in r.stderr.strip().splitlines() if l.strip()]
  return Check(
    "import model_lib_v2",
    findings.ERROR,
    last[-1] if last else f"exit {r.returncode}",
    "See the checks above for the cause",
  )


def render_text(report: DoctorReport) -> str:
  mark = {OK: "ok", findings.ERROR: "x", findings.WARNING: "!", findings.INFO: "i"}
  out = [
    f"od_guard doctor: {'OK' if report.ok else 'PROBLEMS FOUND'} (Python {sys.version.split()[0]})"
  ]
  for c in report.checks:
    out.append(f"[{mark[c.status]:>2}] {c.name}: {c.found}")
    if c.fix:
      out.append(f"      fix: {c.fix}")
  return "\n".join(out)
