"""od_guard's compat layer (`od_guard.odapi.compat`): each shim against the
upstream error it clears, the OD API's protos built from descriptors against
protobuf 3.20's generated modules, the refusal when TensorFlow came first.

Every OD API run is a fresh interpreter: which Keras backs tf.keras, which
protos are in the default pool and which modules are imported are per process.
Each shim's test runs the same code twice, with the layer installed without
that one shim (the exact upstream error) and with it (the behaviour); a shim
this stack does not need is skipped, saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from od_guard import errors
from od_guard.odapi import compat

from conftest import HAS_REALWORLD
from conftest import REALWORLD_MISSING
from conftest import REPO
from conftest import ZOO
from conftest import ZOO_COPIES

_CLEAN = ("OD_GUARD_COMPAT", compat.LEGACY_KERAS)


def _python(script: str, *, env: dict | None = None, timeout: int = 300) -> dict:
  """Runs `script` in a fresh interpreter without OD_GUARD_COMPAT and
  TF_USE_LEGACY_KERAS; returns the JSON its last stdout line prints."""
  full = {k: v for k, v in os.environ.items() if k not in _CLEAN}
  full.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
  r = subprocess.run(
    [sys.executable, "-c", textwrap.dedent(script)],
    capture_output=True,
    text=True,
    timeout=timeout,
    env=full,
  )
  assert r.returncode == 0, r.stderr[-3000:]
  return json.loads(r.stdout.strip().splitlines()[-1])


def _shim_runs(shim: str, body: str) -> tuple[dict, dict]:
  """`body` (defining body()) run with the layer minus `shim`, then with it."""
  if shim not in compat.needed():
    pytest.skip(f"{shim} is not needed on this stack ({_stack_line()})")
  runs = []
  for exclude in ((shim,), ()):
    script = (
      "import json\n"
      "from od_guard.odapi import compat\n"
      f"installed = compat.install(exclude={exclude!r})\n"
      + textwrap.dedent(body)
      + "\ntry:\n  result = {'value': body()}\n"
      "except Exception as e:\n"
      "  result = {'error': type(e).__name__ + ': ' + str(e).splitlines()[0]}\n"
      "result['installed'] = list(installed)\n"
      "print(json.dumps(result))\n"
    )
    runs.append(_python(script))
  without, with_ = runs
  assert shim not in without["installed"] and shim in with_["installed"]
  return without, with_


def _stack_line() -> str:
  s = compat.stack()
  return (
    f"tensorflow {s.tensorflow}, protobuf {s.protobuf}, pillow {s.pillow}, numpy {s.numpy}, "
    f"tensorflow_io {'installed' if s.tensorflow_io else 'absent'}"
  )


# --- the plan, on stacks described rather than installed -----------------------


def _stack(**changes) -> compat.Stack:
  base = {
    "tensorflow": "2.20.0",
    "tf_imported": False,
    "tf_legacy_keras": None,
    "keras": "3.15.1",
    "tf_keras": "2.20.1",
    "protobuf": "7.36.2",
    "pillow": "13.0.0",
    "numpy": "2.4.6",
    "odapi": True,
    "protos_load": False,
    "tensorflow_io": False,
    "tf_slim": True,
  }
  base.update(changes)
  return compat.Stack(**base)


@pytest.mark.parametrize(
  "changes,expected",
  [
    ({}, compat.SHIMS),  # the modern environment: every shim
    (
      {
        "tensorflow": "2.15.1",
        "keras": "2.15.0",
        "tf_keras": "2.15.1",
        "protobuf": "3.20.3",
        "protos_load": True,
        "numpy": "1.26.4",
        "tensorflow_io": True,
      },  # the odapi environment
      (compat.TF_SLIM_CONTROL_FLOW, compat.PILLOW_GETSIZE, compat.NUMPY_ALIASES),
    ),
    (
      {
        "tensorflow": "2.12.0",
        "protobuf": "3.20.3",
        "protos_load": True,
        "pillow": "9.5.0",
        "numpy": "1.23.5",
        "tensorflow_io": True,
      },  # what the OD API 2.8 was released for
      (),
    ),
    ({"odapi": False}, ()),  # no OD API: tf.keras stays Keras 3
  ],
)
def test_needed_follows_the_stack(changes, expected):
  assert compat.needed(_stack(**changes)) == expected


def test_a_missing_or_mismatched_tf_keras_is_named_with_its_install_command():
  missing = compat.tf_keras_problem(_stack(tf_keras=None))
  assert (missing.what, missing.received, missing.fix) == (
    "The OD API needs Keras 2 (tf-keras) as tf.keras; TensorFlow 2.20.0 ships Keras 3 only, "
    "and tf-keras is not installed.",
    "tensorflow 2.20.0, keras 3.15.1, no tf-keras",
    'pip install "tf-keras~=2.20.0" (the tf-keras release of TensorFlow\'s minor version), '
    "then run again.",
  )
  mismatched = compat.tf_keras_problem(_stack(tf_keras="2.19.0"))
  assert (mismatched.what, mismatched.fix) == (
    "tf-keras 2.19.0 does not match TensorFlow 2.20.0: each tf-keras release is built for "
    "one TensorFlow minor version.",
    'pip install "tf-keras~=2.20.0", then run again.',
  )
  assert isinstance(missing, errors.OdGuardError)
  assert compat.tf_keras_problem(_stack()) is None
  assert compat.tf_keras_problem(_stack(tensorflow="2.15.1", tf_keras=None)) is None


def test_modes_and_exclusions_are_checked(monkeypatch):
  monkeypatch.setenv(compat.ENV, "OFF ")
  assert compat.requested_mode() == compat.OFF
  assert compat.requested_mode("auto") == compat.AUTO
  monkeypatch.setenv(compat.ENV, "sometimes")
  with pytest.raises(errors.UsageError) as e:
    compat.requested_mode()
  assert e.value.received == "OD_GUARD_COMPAT='sometimes'"
  with pytest.raises(errors.UsageError):
    compat.install("on")
  with pytest.raises(errors.UsageError) as e:
    compat.install("off", exclude=("tf_slim",))
  assert e.value.fix == f"Pass a collection of: {', '.join(compat.SHIMS)}."


def test_every_shim_names_the_odapi_lines_it_serves_and_the_releases_that_need_it():
  import re

  for name in compat.SHIMS:
    doc = compat._INSTALLERS[name].__doc__
    assert re.search(r"Serves [\w/]+\.py:\d+", " ".join(doc.split())), name
    assert "Needed " in doc, name
    assert compat.describe_shim(name), name


# --- in fresh interpreters ---------------------------------------------------------


@pytest.mark.odapi
def test_off_applies_nothing_and_stays_off():
  out = _python(
    """
      import json, os, sys
      from od_guard.odapi import compat
      finders = len(sys.meta_path)
      off = compat.install()  # OD_GUARD_COMPAT=off
      later = [compat.install("auto"), compat.apply()]  # the first call decided
      print(json.dumps([off, later, os.environ.get("TF_USE_LEGACY_KERAS"),
                        len(sys.meta_path) == finders]))
  """,
    env={"OD_GUARD_COMPAT": "off"},
  )
  assert out == [[], [[], []], None, True]


@pytest.mark.odapi
def test_install_is_idempotent():
  out = _python("""
      import json, os, sys
      from od_guard.odapi import compat
      first = compat.install()
      finders = len(sys.meta_path)
      second = compat.install()
      print(json.dumps({
        "first": first,
        "again": [second == first, len(sys.meta_path) == finders, compat.active() == first],
        "hooks": sum(hasattr(f, "builds_odapi_protos") for f in sys.meta_path),
        "legacy": os.environ.get("TF_USE_LEGACY_KERAS"),
      }))
  """)
  assert out["first"] == list(compat.needed())
  assert out["again"] == [True, True, True]
  assert out["hooks"] == (1 if out["first"] else 0)
  assert out["legacy"] == ("1" if compat.TF_KERAS in out["first"] else None)


@pytest.mark.odapi
def test_tf_keras_shim_makes_tf_keras_keras_2():
  without, with_ = _shim_runs(
    compat.TF_KERAS,
    """
    def body():
      from object_detection.core import freezable_sync_batch_norm
      import tensorflow as tf
      base = freezable_sync_batch_norm.FreezableSyncBatchNorm.__mro__[1]
      return [base.__module__.split(".")[0], tf.keras.__name__.split(".")[0]]
    """,
  )
  assert without["error"] == (
    "AttributeError: module 'keras._tf_keras.keras.layers' has no attribute 'experimental'"
  )
  assert with_["value"] == ["tf_keras", "tf_keras"]


@pytest.mark.odapi
def test_protos_shim_builds_the_modules_from_their_descriptors():
  without, with_ = _shim_runs(
    compat.ODAPI_PROTOS,
    """
    def body():
      from object_detection.protos import string_int_label_map_pb2 as m
      from od_guard.odapi import config_schema
      schema = config_schema.load()
      from object_detection.protos import pipeline_pb2
      return [
        m.StringIntLabelMap.DESCRIPTOR.full_name,
        type(m.StringIntLabelMap()).__module__,
        schema.route,
        schema.message_class is pipeline_pb2.TrainEvalPipelineConfig,
      ]
    """,
  )
  assert without["error"] == "TypeError: Descriptors cannot be created directly."
  assert with_["value"] == [
    "object_detection.protos.StringIntLabelMap",
    "object_detection.protos.string_int_label_map_pb2",
    "generated",  # od_guard reads configs with the OD API's own (hooked) modules
    True,
  ]


_DUMP_SCRIPT = """
import json, pathlib, sys
sys.path.insert(0, {tests!r})
from od_guard.odapi import compat
installed = compat.install()
from od_guard.odapi import config_schema
from support import odapi_protos
directory = config_schema.protos_dir()
modules = {{n: odapi_protos.dump_module(n) for n in odapi_protos.module_names(directory)}}
configs = {{key: odapi_protos.config_digests(pathlib.Path(p)) for key, p in {configs!r}.items()}}
print(json.dumps({{"installed": installed, "modules": modules, "configs": configs}}))
"""


def _dump_here(configs: dict[str, str]) -> dict:
  return _python(_DUMP_SCRIPT.format(tests=str(REPO / "tests"), configs=configs))


def _reference() -> dict:
  from support import odapi_protos

  return json.loads(odapi_protos.DUMP.read_text(encoding="utf-8"))


@pytest.mark.odapi
def test_protos_match_protobuf_320s_generated_modules_and_zoo_configs_serialize_identically():
  """Every message, enum and field of the 34 modules, against protobuf 3.20's
  real generated modules (tests/data/odapi_protos.json, from the odapi
  environment); where the layer does not build them (protobuf 3.20 here), the
  real modules are checked against the dump instead."""
  reference = _reference()
  configs = {
    f"tests/data/zoo_configs/{p.name}": str(p) for p in sorted(ZOO_COPIES.glob("*.config"))
  }
  here = _dump_here(configs)
  assert len(reference["modules"]) == 34
  assert sorted(here["modules"]) == sorted(reference["modules"])
  for name, expected in reference["modules"].items():
    assert here["modules"][name] == expected, name
  assert len(configs) == 8
  for key, digests in here["configs"].items():
    assert digests == reference["zoo_configs"][key], key


@pytest.mark.skipif(not HAS_REALWORLD, reason=REALWORLD_MISSING)
@pytest.mark.odapi
def test_every_shared_zoo_config_parses_to_the_same_bytes_as_under_protobuf_320():
  reference = _reference()["zoo_configs"]
  configs = {f"realworld/zoo_configs/{p.name}": str(p) for p in sorted(ZOO.glob("*.config"))}
  here = _dump_here(configs)["configs"]
  assert len(here) == 39
  for key, digests in here.items():
    assert key in reference, f"{key}: not in the dump; rerun tests/data/make_odapi_protos.py"
    assert digests == reference[key], key
  parsed = [d for d in here.values() if "serialized_sha256" in d]
  assert len(parsed) == 36  # 3 are published unparseable, with the same error in both


@pytest.mark.odapi
def test_estimator_shim_holds_mode_keys_and_names_the_tf1_entry_points():
  without, with_ = _shim_runs(
    compat.TF_ESTIMATOR,
    """
    def body():
      from object_detection import inputs
      from tensorflow.compat.v1 import estimator
      keys = inputs.tf_estimator.ModeKeys
      out = [keys.TRAIN, keys.EVAL, keys.PREDICT, hasattr(estimator, "RunConfig")]
      try:
        estimator.RunConfig(model_dir="x")
      except compat.Tf1EntryPointError as e:
        out += [e.received, "model_main.py" in e.fix, isinstance(e, AttributeError)]
      return out
    """,
  )
  assert without["error"].startswith(
    "ImportError: cannot import name 'estimator' from 'tensorflow.compat.v1'"
  )
  assert with_["value"] == [
    "train",
    "eval",
    "infer",
    False,
    "tf.compat.v1.estimator.RunConfig",
    True,
    True,
  ]


@pytest.mark.odapi
def test_tensorflow_io_stand_in_is_seen_only_by_deepmac_and_raises_on_use():
  without, with_ = _shim_runs(
    compat.TENSORFLOW_IO,
    """
    import sys
    def body():
      from object_detection.meta_architectures import deepmac_meta_arch as deepmac
      out = ["tensorflow_io" in sys.modules]
      try:
        deepmac.tfio.experimental.color.rgb_to_lab
      except compat.TensorflowIoMissingError as e:
        out.append(e.received)
      try:
        import tensorflow_io
      except ModuleNotFoundError as e:
        out.append(str(e))
      return out
    """,
  )
  assert without["error"] == "ModuleNotFoundError: No module named 'tensorflow_io'"
  assert with_["value"][0] is False
  assert with_["value"][1].startswith(
    "tensorflow_io.experimental (object_detection/meta_architectures/deepmac_meta_arch.py:1795)"
  )
  assert with_["value"][2] == "No module named 'tensorflow_io'"


@pytest.mark.odapi
def test_tf_slim_shim_makes_case_and_cond_work():
  without, with_ = _shim_runs(
    compat.TF_SLIM_CONTROL_FLOW,
    """
    def body():
      import numpy as np
      import tensorflow as tf
      from tf_slim.data import tfexample_decoder
      image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
      png = tf.io.encode_png(image)
      handler = tfexample_decoder.Image(channels=3)
      item = handler.tensors_to_item({"image/encoded": png, "image/format": tf.constant("png")})
      backup = tfexample_decoder.BackupHandler(
        tfexample_decoder.Tensor("primary"), tfexample_decoder.Tensor("backup"))
      second = backup.tensors_to_item({"primary": tf.zeros([0]), "backup": tf.constant([1.0])})
      return [item.numpy().tolist() == image.tolist(), second.numpy().tolist()]
    """,
  )
  assert without["error"] == (
    "AttributeError: module 'tensorflow.python.ops.control_flow_ops' has no attribute 'case'"
  )
  assert with_["value"] == [True, [1.0]]


@pytest.mark.odapi
def test_pillow_shim_lets_eval_images_be_drawn():
  without, with_ = _shim_runs(
    compat.PILLOW_GETSIZE,
    """
    def body():
      import numpy as np
      from PIL import ImageFont
      from object_detection.utils import visualization_utils
      image = np.zeros((96, 96, 3), np.uint8)
      visualization_utils.draw_bounding_box_on_image_array(
        image, 0.4, 0.2, 0.9, 0.8, color="red", display_str_list=["class_1: 90%"])
      try:  # the font visualization_utils picks
        font = ImageFont.truetype("arial.ttf", 24)
      except IOError:
        font = ImageFont.load_default()
      left, top, right, bottom = font.getbbox("class_1: 90%")
      return [type(font).__name__, int((image[..., 0] > 0).sum()), list(font.getsize("class_1: 90%")), [right, bottom]]
    """,
  )
  font, red_pixels, size, bbox_corner = with_["value"]  # FreeTypeFont where FreeType is built in
  assert without["error"] == f"AttributeError: '{font}' object has no attribute 'getsize'"
  assert red_pixels > 200 and size == bbox_corner


@pytest.mark.odapi
def test_numpy_shim_gives_the_aliases_to_the_odapi_modules_only():
  without, with_ = _shim_runs(
    compat.NUMPY_ALIASES,
    """
    def body():
      import numpy as np
      from object_detection.utils import metrics
      precision, recall = metrics.compute_precision_recall(
        np.array([0.9, 0.4, 0.7]), np.array([True, False, True]), 2)
      average = metrics.compute_average_precision(precision, recall)
      return [precision.tolist(), recall.tolist(), float(average), hasattr(np, "float"),
              metrics.np is np, metrics.np.zeros is np.zeros]
    """,
  )
  assert without["error"] == "AttributeError: module 'numpy' has no attribute 'float'."
  assert with_["value"] == [[1.0, 1.0, 2 / 3], [0.5, 1.0, 1.0], 1.0, False, False, True]


# --- the order: TensorFlow first ----------------------------------------------------


@pytest.mark.odapi
def test_tf_imported_first_is_refused_with_nothing_changed():
  if compat.TF_KERAS not in compat.needed():
    pytest.skip(f"no shim must precede TensorFlow on this stack ({_stack_line()})")
  out = _python("""
      import json, os, sys
      import tensorflow as tf
      from od_guard.odapi import compat
      try:
        compat.install()
      except compat.ImportOrderError as e:
        out = e.to_dict()
      out["state"] = [
        compat.active(),
        os.environ.get("TF_USE_LEGACY_KERAS"),
        sum(hasattr(f, "builds_odapi_protos") for f in sys.meta_path),
      ]
      try:
        from object_detection.protos import pipeline_pb2
      except TypeError as e:
        out["protos"] = str(e).splitlines()[0]
      out["tf"] = tf.__version__
      print(json.dumps(out))
  """)
  tf = out.pop("tf")
  assert out == {
    "error": "ImportOrderError",
    "what": (
      "od_guard's compat layer was asked for after TensorFlow was imported: TensorFlow "
      f"{tf} chose Keras 3 for tf.keras at its import, and the OD API needs tf-keras there "
      "(TF_USE_LEGACY_KERAS=1 set before `import tensorflow`). Nothing was changed."
    ),
    "received": f"tensorflow {tf} already imported with TF_USE_LEGACY_KERAS=unset at its import",
    "fix": (
      "Call od_guard.odapi.compat.install() before anything imports TensorFlow, or run "
      "through `python -m od_guard.model_main_tf2` / `python -m od_guard.odapi_compat "
      "MODULE`, or export TF_USE_LEGACY_KERAS=1 before starting Python."
    ),
    "state": [[], None, 0],  # not half-patched
    "protos": "Descriptors cannot be created directly.",
  }
  assert issubclass(compat.ImportOrderError, errors.OdGuardError)


@pytest.mark.odapi
def test_tf_imported_first_is_accepted_where_nothing_must_precede_it():
  """TF imported with TF_USE_LEGACY_KERAS=1 set (or a TF <= 2.15): the layer
  installs everything else."""
  out = _python(
    """
      import json
      import tensorflow as tf
      from od_guard.odapi import compat
      installed = compat.install()
      from object_detection import model_lib_v2
      print(json.dumps({"installed": installed, "keras": tf.keras.__name__.split(".")[0]}))
    """,
    env={compat.LEGACY_KERAS: "1"} if compat.TF_KERAS in compat.needed() else {},
  )
  assert out["installed"] == list(compat.needed())
  assert out["keras"] == ("tf_keras" if compat.TF_KERAS in out["installed"] else "keras")


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))


# --- od-guard doctor: what stands in the way, and whether the layer clears it ---------


def _doctor(**env) -> tuple[int, dict]:
  from conftest import run_cli

  r = run_cli("doctor", "--json", env=env, unset=tuple(k for k in _CLEAN if k not in env))
  return r.returncode, json.loads(r.stdout)


@pytest.mark.odapi
def test_doctor_names_each_blocker_and_says_the_layer_clears_it():
  from od_guard.odapi import doctor

  plan = compat.needed()
  code, report = _doctor()
  checks = {c["name"]: c for c in report["checks"]}
  assert (code, report["ok"]) == (0, True)
  assert checks["od_guard compat layer"]["found"] == (
    f"OD_GUARD_COMPAT=auto: clears {', '.join(plan)} ({len(plan)} shims, in-process)"
  )
  for name in plan:
    check = checks[doctor._BLOCKERS[name][0]]
    assert check["status"] == "warning", check
    assert "stock code fails with " in check["found"]
    assert f"od_guard's compat layer clears it ({name}: " in check["found"]
    assert check["fix"].startswith("Run through `python -m od_guard.model_main_tf2`")


@pytest.mark.odapi
def test_doctor_with_the_layer_off_explains_each_failure_as_stock_code_meets_it():
  from od_guard.odapi import doctor

  plan = compat.needed()
  code, report = _doctor(OD_GUARD_COMPAT="off")
  checks = {c["name"]: c for c in report["checks"]}
  assert (code, report["ok"]) == ((1, False) if plan else (0, True))
  for name in plan:
    check = checks[doctor._BLOCKERS[name][0]]
    assert check["status"] == "error", check
    assert check["found"].endswith("od_guard's compat layer would clear it, but it is off")
    assert check["fix"].endswith("; or unset OD_GUARD_COMPAT: od_guard's compat layer clears it")
  if compat.TF_KERAS in plan:
    assert checks["keras"]["fix"].startswith(
      "export TF_USE_LEGACY_KERAS=1  (without it: AttributeError: module "
      "'keras._tf_keras.keras.layers' has no attribute 'experimental')"
    )


def test_doctor_gives_the_install_command_for_what_the_layer_cannot_clear():
  from od_guard.odapi import doctor

  for mode, tail in ((compat.AUTO, ""), (compat.OFF, " and export TF_USE_LEGACY_KERAS=1")):
    checks = doctor._compat_checks(_stack(tf_keras=None), mode, {})
    (keras,) = [c for c in checks if c.name == "keras"]
    assert keras.status == "error"
    assert keras.found.endswith(
      "TensorFlow 2.20.0 ships Keras 3 only, and tf-keras is not installed."
    )
    assert (
      keras.fix
      == f'pip install "tf-keras~=2.20.0" (the tf-keras release of TensorFlow\'s minor version){tail}, then run again.'
    )
  requirements = doctor._odapi_requirements((2, 20, 0))
  missing = [requirements[m] for m in ("official", "pycocotools", "lvis", "cv2")]
  assert doctor._pip_commands(missing) == (
    "pip install pycocotools opencv-python-headless && "
    'pip install --no-deps "tf-models-official~=2.20.0" lvis==0.5.3'
  )
  old = doctor._odapi_requirements((2, 15, 1))
  assert doctor._pip_commands([old["official"], old["lvis"]]) == (
    "pip install tf-models-official==2.15.0 lvis==0.5.3"
  )
