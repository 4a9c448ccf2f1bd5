"""`od-guard doctor`: is this environment one the TF2 OD API runs in?

Checks the version drift that breaks the OD API long before any checkpoint is
read: TF / Keras / tf-keras / protobuf / Pillow / numpy / OD API versions and
what the OD API imports. Each blocker (Keras 3 as tf.keras, protoc-3 protos
under protobuf >= 4, `tf.estimator` gone, tensorflow_io missing, tf-slim's
`control_flow_ops.case/cond`, Pillow's `getsize`, numpy's aliases) is reported
with the exact error stock code hits and whether od_guard's compat layer
(`od_guard.odapi.compat`) clears it; what it cannot clear comes with the pip
command. Versions come from package metadata, so the checks import neither
TensorFlow nor the OD API; `deep=True` also imports model_lib_v2 in a
subprocess through the layer and reports the real error.

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
from od_guard.odapi import compat
from od_guard.odapi import config_schema
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
  """Whether the OD API's own *_pb2 files import here (a real import, unless
  od_guard's compat layer builds them in this process)."""
  if importlib.util.find_spec("object_detection") is None:
    return False, "not installed"
  if config_schema.protos_hooked():
    directory = config_schema.protos_dir()
    if directory is not None and config_schema.protoc3_modules_load(directory):
      return True, "imports"
    return False, "TypeError: Descriptors cannot be created directly."
  try:
    from object_detection.protos import string_int_label_map_pb2  # noqa: F401  protobuf only
  except Exception as e:  # pylint: disable=broad-except  # any failure is the finding
    return False, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
  return True, "imports"


# What the OD API's TF2 path (model_lib_v2, exporter_lib_v2 and the model
# builder) imports beyond TensorFlow: module -> (pip requirement, --no-deps?).
# tf-models-official and lvis are installed without their dependencies on
# TF >= 2.16: their metadata pins tensorflow-text / opencv-python releases that
# conflict (constraints/modern-nodeps.txt).
def _odapi_requirements(tf_v: tuple[int, ...]) -> dict[str, tuple[str, bool]]:
  modern = tf_v >= (2, 16)
  minor = ".".join(map(str, tf_v[:2])) if tf_v else "2.15"
  return {
    "tf_slim": ("tf-slim==1.1.0", False),
    "official": (
      f"tf-models-official~={minor}.0" if modern else "tf-models-official==2.15.0",
      modern,
    ),
    "pycocotools": ("pycocotools", False),
    "lvis": ("lvis==0.5.3", modern),
    "cv2": ("opencv-python-headless", False),
    "scipy": ("scipy", False),
    "matplotlib": ("matplotlib", False),
    "yaml": ("pyyaml", False),
    "gin": ("gin-config", False),
    "PIL": ("pillow", False),
  }


def _pip_commands(requirements: list[tuple[str, bool]]) -> str:
  plain = [r for r, nodeps in requirements if not nodeps]
  nodeps = [r for r, nodeps in requirements if nodeps]
  commands = []
  if plain:
    commands.append("pip install " + " ".join(f'"{r}"' if "~" in r else r for r in plain))
  if nodeps:
    commands.append(
      "pip install --no-deps " + " ".join(f'"{r}"' if "~" in r else r for r in nodeps)
    )
  return " && ".join(commands)


# Per shim of od_guard's compat layer: the check's name and what stock code hits
# without it (the exact error, and where).
_BLOCKERS = {
  compat.TF_KERAS: (
    "keras",
    "AttributeError: module 'keras._tf_keras.keras.layers' has no attribute 'experimental' "
    "(object_detection/core/freezable_sync_batch_norm.py:20), at import",
  ),
  compat.ODAPI_PROTOS: (
    "object_detection.protos",
    "{protos} (object_detection/protos/string_int_label_map_pb2.py:33), at import",
  ),
  compat.TF_ESTIMATOR: (
    "tf.estimator",
    "ImportError: cannot import name 'estimator' from 'tensorflow.compat.v1' "
    "(object_detection/inputs.py:24), at import of model_lib_v2",
  ),
  compat.TENSORFLOW_IO: (
    "tensorflow_io",
    "ModuleNotFoundError: No module named 'tensorflow_io' "
    "(object_detection/meta_architectures/deepmac_meta_arch.py:28), at import of the model "
    "builder",
  ),
  compat.TF_SLIM_CONTROL_FLOW: (
    "tf_slim.control_flow_ops",
    "AttributeError: module 'tensorflow.python.ops.control_flow_ops' has no attribute 'case' "
    "(tf_slim/data/tfexample_decoder.py:453), at the first training step",
  ),
  compat.PILLOW_GETSIZE: (
    "pillow",
    "AttributeError: 'FreeTypeFont' object has no attribute 'getsize' "
    "(object_detection/utils/visualization_utils.py:219), when eval draws its images",
  ),
  compat.NUMPY_ALIASES: (
    "numpy",
    "AttributeError: module 'numpy' has no attribute 'float' "
    "(object_detection/utils/metrics.py:45), in PASCAL VOC / OID metrics and elsewhere",
  ),
}
_WHY = {
  compat.TF_KERAS: "TF {tensorflow} routes tf.keras to Keras {keras}; the OD API needs Keras 2",
  compat.ODAPI_PROTOS: "the OD API's *_pb2.py files are protoc-3 output; protobuf {protobuf} "
  "refuses them",
  compat.TF_ESTIMATOR: "TF {tensorflow} has no tf.estimator (removed in 2.16)",
  compat.TENSORFLOW_IO: "tensorflow-io is not installed",
  compat.TF_SLIM_CONTROL_FLOW: "tf-slim calls control_flow_ops.case/cond, which TF 2.13 moved "
  "(you have {tensorflow})",
  compat.PILLOW_GETSIZE: "Pillow {pillow} has no FreeTypeFont.getsize (removed in 10)",
  compat.NUMPY_ALIASES: "numpy {numpy} lacks aliases the OD API uses (np.float, np.int: removed in 1.24)",
}
_RUN_THROUGH = (
  "Run through `python -m od_guard.model_main_tf2` (train, eval) or `python -m "
  "od_guard.odapi_compat object_detection.<module>` (stock model_main_tf2, exporter_main_v2), "
  "or call od_guard.odapi.compat.install() before importing TensorFlow"
)
_LEFT_OVER = {
  compat.TF_ESTIMATOR: "; the TF1 entry points (model_main.py, model_tpu_main.py) cannot work "
  "on this TensorFlow",
  compat.TENSORFLOW_IO: "; training DeepMAC (its colour-consistency loss) needs the real "
  "tensorflow-io, built for your TensorFlow",
}


def _compat_checks(s: compat.Stack, mode: str, env) -> list[Check]:
  """One check per blocker of this stack: what stock code hits, and whether
  od_guard's compat layer clears it (mode "auto") or not ("off")."""
  plan = compat.needed(s)
  on = mode == compat.AUTO
  loads, why = _protos_load()
  values = {
    "tensorflow": s.tensorflow,
    "keras": s.keras,
    "protobuf": s.protobuf,
    "pillow": s.pillow,
    "numpy": s.numpy,
    "protos": why if not loads else "TypeError: Descriptors cannot be created directly.",
  }
  checks = [
    Check(
      "od_guard compat layer",
      OK if on or not plan else findings.INFO,
      (
        f"{compat.ENV}={mode}: "
        + (
          f"clears {', '.join(plan)} ({len(plan)} shims, in-process)"
          if on and plan
          else "nothing to clear on this stack"
          if not plan
          else f"off, so nothing clears {', '.join(plan)}"
        )
      ),
      "" if on or not plan else f"Unset {compat.ENV} (or set it to auto)",
    )
  ]
  if compat.TF_KERAS not in plan and s.keras:
    checks.append(Check("keras", OK, s.keras))
  for name in plan:
    check, error = _BLOCKERS[name]
    error = error.format(**values)
    found = f"{_WHY[name].format(**values)}: stock code fails with {error}; " + (
      f"od_guard's compat layer clears it ({name}: {compat.describe_shim(name)})"
      if on
      else "od_guard's compat layer would clear it, but it is off"
    )
    problem = compat.tf_keras_problem(s) if name == compat.TF_KERAS else None
    if problem is not None:
      checks.append(
        Check(
          check,
          findings.ERROR,
          f"{found}; {problem.what}",
          problem.fix[: -len(", then run again.")]
          + ("" if on else f" and export {compat.LEGACY_KERAS}=1")
          + ", then run again.",
        )
      )
    elif name == compat.TF_KERAS and _legacy_set(env):  # the user routed tf.keras already
      checks.append(
        Check(
          check,
          OK,
          f"{s.keras} (tf-keras {s.tf_keras}, {compat.LEGACY_KERAS}=1: tf.keras is tf-keras)",
        )
      )
    elif on:
      checks.append(Check(check, findings.WARNING, found, _RUN_THROUGH + _LEFT_OVER.get(name, "")))
    else:
      without = error.split(" (", 1)[0]
      checks.append(
        Check(
          check,
          findings.ERROR,
          found,
          _STOCK_FIX[name].format(without=without, **values)
          + f"; or unset {compat.ENV}: od_guard's compat layer clears it",
        )
      )
  return checks


# Without od_guard's layer (OD_GUARD_COMPAT=off): what clears each blocker on
# its own, where anything does.
_STOCK_FIX = {
  compat.TF_KERAS: "export TF_USE_LEGACY_KERAS=1  (without it: {without})",
  compat.ODAPI_PROTOS: "pip install protobuf==3.20.3 (TF <= 2.15 only), or regenerate the protos "
  "with protoc >= 21",
  compat.TF_ESTIMATOR: "Use TensorFlow 2.15 for the OD API (the odapi environment: TF 2.15.1, "
  "Keras 2, tensorflow-estimator)",
  compat.TENSORFLOW_IO: "pip install tensorflow-io matching your TF",
  compat.TF_SLIM_CONTROL_FLOW: "Nothing short of editing tf-slim (1.1.0 is its newest release)",
  compat.PILLOW_GETSIZE: "pip install 'pillow<10'",
  compat.NUMPY_ALIASES: "pip install 'numpy<1.24', where TensorFlow {tensorflow} allows it",
}


def _legacy_set(env) -> bool:
  return env.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true", "yes")


def run(
  *,
  deep: bool = False,
  environ: dict | None = None,
  pipeline_config_path: str | None = None,
  model_dir: str | None = None,
  paths: Sequence[str] = (),
) -> DoctorReport:
  """Runs the checks.

  Every blocker between this stack and the OD API is a check saying what stock
  code hits (the exact error and where) and whether od_guard's compat layer
  clears it: a warning where it does (stock scripts still fail; od_guard's
  entry points and `compat.install()` do not), an error where it does not, or
  where it is off (OD_GUARD_COMPAT=off), with the exact pip install command for
  what is missing (tf-keras of TF's minor, tf-models-official, pycocotools ...).

  Args:
    deep: also import object_detection.model_lib_v2 in a subprocess, through
      the compat layer (5-15 s), and report the error it raises, if any.
    environ: environment variables to judge (default: os.environ).
    pipeline_config_path: the config training will use: its own path, its
      fine_tune_checkpoint and its input files are checked for storage TF can
      read (the config is read without TensorFlow).
    model_dir: the training output directory, checked the same way.
    paths: more paths training will read or write.
  """
  env = os.environ if environ is None else environ
  v = _versions()
  tf_v, pb_v = _tuple(v["tensorflow"]), _tuple(v["protobuf"])
  odapi = v["object-detection"]
  checks: list[Check] = [Check("python", OK, sys.version.split()[0])]
  if not tf_v:
    checks.append(
      Check(
        "tensorflow",
        findings.ERROR,
        "not installed",
        "pip install tensorflow==2.20.0 tf-keras==2.20.1 (od_guard's tested current pairing; "
        "or tensorflow==2.15.1, the OD API's own)",
      )
    )
  else:
    checks.append(Check("tensorflow", OK, v["tensorflow"]))
  requirements = _odapi_requirements(tf_v)
  if odapi is None:
    checks.append(
      Check(
        "object_detection",
        findings.WARNING,
        "not installed",
        (
          "pip install --no-deps tf-models-research-object-detection==2.8.0.post1, then what "
          "it imports (od_guard's compat layer runs it on this TensorFlow): "
          + _pip_commands(list(requirements.values()))
          if tf_v >= (2, 16)
          else "pip install tf-models-research-object-detection==2.8.0.post1 protobuf==3.20.3"
        )
        + " (only needed for OD API training and checks)",
      )
    )
  else:
    checks.append(Check("object_detection", OK, odapi))
    missing = [(m, requirements[m]) for m in requirements if not _importable(m)]
    if missing:
      checks.append(
        Check(
          "odapi dependencies",
          findings.ERROR,
          "the OD API's TF2 path imports "
          + ", ".join(m for m, _ in missing)
          + ", not installed (ModuleNotFoundError at import of model_lib_v2 or the model "
          "builder)",
          _pip_commands([r for _, r in missing]),
        )
      )
  try:
    mode = compat.requested_mode(env.get(compat.ENV) or None)
  except errors.UsageError as e:
    checks.append(Check("od_guard compat layer", findings.ERROR, e.received, e.fix))
    mode = compat.OFF
  s = dataclasses.replace(compat.stack(), protos_load=_protos_load()[0] or not odapi)
  if odapi:
    checks.extend(_compat_checks(s, mode, env))
  elif v["keras"]:
    checks.append(Check("keras", OK, v["keras"]))
  if not odapi and pb_v:
    checks.append(Check("protobuf", OK, v["protobuf"]))
  if pipeline_config_path or model_dir or paths:
    checks.extend(storage_checks(training_paths(pipeline_config_path, model_dir, paths), v, env))
  if deep and odapi:
    checks.append(_deep_import())
  return DoctorReport(versions=v, checks=tuple(checks))


def _importable(module: str) -> bool:
  try:
    return importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):
    return False


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
  code = (
    "import od_guard.odapi_compat as c; c.install(); from object_detection import model_lib_v2; "
    "print(','.join(c.active()))"
  )
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
    shims = (r.stdout.strip().splitlines() or [""])[-1]
    return Check(
      "import model_lib_v2",
      OK,
      f"imports (od_guard's compat layer: {shims.replace(',', ', ') or 'no shims needed'})",
    )
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
