"""Checkpoints written by TensorFlow itself, once per test session.

Every fixture here writes a real checkpoint with real TensorFlow / Keras / the
OD API: nothing is mocked. The expensive ones are session-scoped.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Every finding raised in the suite (and in the processes it starts) must use a
# code of od_guard.restore.codes.
os.environ["OD_GUARD_STRICT_CODES"] = "1"

REPO = pathlib.Path(__file__).resolve().parent.parent

# The project's shared real-world data lives beside the repository in CI
# (../shared), not in a user's clone. OD_GUARD_SHARED_DIR points elsewhere, e.g.
# at a path that does not exist, to run the suite as a clone would.
SHARED = pathlib.Path(os.environ.get("OD_GUARD_SHARED_DIR") or REPO.parent / "shared")
REALWORLD = SHARED / "realworld"
USER_CKPTS = REALWORLD / "user_checkpoints"
ZOO = REALWORLD / "zoo_configs"
SIGN_LANGUAGE = USER_CKPTS / "sign_language_ssd_mobilenet_v2_fpnlite_320"
BITEWING = USER_CKPTS / "bitewing_efficientdet_d0"

# What the suite cannot do without is in the repository: verbatim copies of the
# zoo configs the fixtures build tiny models from (tests/data/make_test_data.py).
DATA = REPO / "tests" / "data"
ZOO_COPIES = DATA / "zoo_configs"

HAS_REALWORLD = REALWORLD.is_dir()
REALWORLD_MISSING = (
  "needs ../shared/realworld (the project's shared real-world data: TF2 Detection Zoo "
  "configs and users' checkpoints), not present beside this clone"
  if "OD_GUARD_SHARED_DIR" not in os.environ
  else f"needs {REALWORLD} (the project's shared real-world data: TF2 Detection Zoo "
  "configs and users' checkpoints; OD_GUARD_SHARED_DIR points there), not present"
)
needs_realworld = pytest.mark.skipif(not HAS_REALWORLD, reason=REALWORLD_MISSING)


def zoo_config_names() -> list:
  """Every shared zoo config's file name, for parametrize; one skipped
  placeholder when the shared data is absent."""
  if not HAS_REALWORLD:
    return [pytest.param("(no shared zoo configs)", marks=needs_realworld)]
  return sorted(p.name for p in ZOO.glob("*.config"))


def _odapi_usable() -> bool:
  """The OD API is installed and usable in this test process: its protos load.

  In the modern environment (TF 2.20, protobuf 7) it runs only through
  od_guard's compat layer, which routes tf.keras to tf-keras for the whole
  process: so the layer is installed here, before anything imports TensorFlow,
  only when OD_GUARD_COMPAT is set (make test-modern's second run, over the files
  in the Makefile's MODERN_ODAPI_TESTS, sets it to auto); the first run's Keras 3
  tests see tf.keras as Keras 3 and the OD API tests are skipped.
  """
  if importlib.util.find_spec("object_detection") is None:
    return False
  if os.environ.get("OD_GUARD_COMPAT"):
    from od_guard import errors
    from od_guard.odapi import compat

    try:
      compat.install()
    except errors.OdGuardError:
      return False
  try:
    from object_detection.protos import pipeline_pb2  # noqa: F401  protobuf only
  except Exception:  # pylint: disable=broad-except
    return False
  return True


HAS_ODAPI = _odapi_usable()


def keras3_available() -> bool:
  try:
    import keras
  except ImportError:
    return False
  return int(keras.__version__.split(".")[0]) >= 3


def keras_of(flavour: str):
  """The Keras module of a flavour ('keras2': TF <= 2.15's tf.keras, 'tf_keras',
  'keras3'), or skip where this environment lacks it."""
  import tensorflow as tf

  if flavour == "tf_keras":
    import tf_keras

    return tf_keras
  if flavour == "keras3":
    if not keras3_available():
      pytest.skip("Keras 3 is the modern environment's")
    import keras

    return keras
  if keras3_available():
    pytest.skip("Keras 2 as tf.keras is TF <= 2.15's (the odapi environment's)")
  return tf.keras


def run_cli(
  *args: str,
  check_tf: bool = False,
  env: dict | None = None,
  unset: tuple[str, ...] = (),
  launcher: list[str] | None = None,
) -> subprocess.CompletedProcess:
  """Runs `od-guard ARGS` in a fresh interpreter, as a user would.

  With check_tf, the process also reports on stderr's last line whether
  TensorFlow got imported. `env` adds variables, `unset` removes them.
  """
  code = "import sys\nfrom od_guard import cli\nrc = cli.main(sys.argv[1:])\n"
  if check_tf:
    code += "print('TF_IMPORTED=' + str('tensorflow' in sys.modules), file=sys.stderr)\n"
  code += "sys.exit(rc)\n"
  full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
  for name in unset:
    full_env.pop(name, None)
  return subprocess.run(
    [*(launcher or []), sys.executable, "-c", code, *args],
    capture_output=True,
    text=True,
    env=full_env,
    timeout=120,
  )


def cli_in_process(*args: str) -> subprocess.CompletedProcess:
  """Runs `od-guard ARGS` in this process (`cli.main`), capturing its output:
  for tests of what a command says, where a fresh interpreter adds nothing
  but its start-up (`run_cli` when the process itself is under test)."""
  import contextlib
  import io

  from od_guard import cli

  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      code = cli.main(list(args))
    except SystemExit as e:  # argparse's own exits (--help)
      code = e.code if isinstance(e.code, int) else 1
  return subprocess.CompletedProcess(["od-guard", *args], code, out.getvalue(), err.getvalue())


def raises_exactly(expected: Exception, call, *args, **kwargs):
  """Calls `call(*args, **kwargs)`, which must raise an error of `expected`'s type
  saying exactly what `expected` says (what, received, fix); returns that error."""
  with pytest.raises(type(expected)) as e:
    call(*args, **kwargs)
  got = (e.value.what, e.value.received, e.value.fix)
  assert got == (expected.what, expected.received, expected.fix)
  return e.value


def tf_listing(prefix: str) -> dict[str, tuple[tuple[int, ...], str]]:
  """What TensorFlow itself says a checkpoint holds: key -> (shape, dtype)."""
  import tensorflow as tf

  reader = tf.train.load_checkpoint(prefix)
  dtypes = reader.get_variable_to_dtype_map()
  return {
    name: (tuple(shape), dtypes[name].name) for name, shape in tf.train.list_variables(prefix)
  }


@pytest.fixture(scope="session")
def tf():
  import tensorflow

  return tensorflow


def fit_tf_keras_stem_model(*, head_name: str, images, targets):
  """A tf-keras model (stem_conv, stem_bn, pooling, a 3-way Dense head named
  `head_name`) compiled with Adam and fitted once on `images` -> `targets`, so
  that it has optimizer slots and bookkeeping to save."""
  import tf_keras as keras

  inputs = keras.Input((8, 8, 3))
  x = keras.layers.Conv2D(4, 3, name="stem_conv")(inputs)
  x = keras.layers.BatchNormalization(name="stem_bn")(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  outputs = keras.layers.Dense(3, name=head_name)(x)
  model = keras.Model(inputs, outputs)
  model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
  model.fit(images, targets, verbose=0)
  return model


@pytest.fixture(scope="session")
def keras_tf_checkpoint(tmp_path_factory, tf):
  """A tf.keras/tf-keras model trained one step, saved with tf.train.Checkpoint
  together with its optimizer (so the checkpoint has slots and bookkeeping)."""
  import numpy as np

  directory = tmp_path_factory.mktemp("keras_tf_ckpt")
  model = fit_tf_keras_stem_model(
    head_name="class.head/logits", images=np.zeros((2, 8, 8, 3)), targets=np.zeros((2, 3))
  )
  ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
  return ckpt.save(str(directory / "ckpt"))


@pytest.fixture(scope="session")
def tf1_checkpoint(tmp_path_factory, tf):
  """A TF1 name-based checkpoint, written by tf.compat.v1.train.Saver in graph mode."""
  from od_guard.testing import tiny_odapi

  return tiny_odapi.save_tf1_checkpoint(str(tmp_path_factory.mktemp("tf1_ckpt")))


@pytest.fixture(scope="session")
def saved_model_dir(tmp_path_factory, tf):
  directory = tmp_path_factory.mktemp("saved_model") / "export"

  class Head(tf.Module):
    def __init__(self):
      super().__init__()
      self.kernel = tf.Variable(tf.zeros([4, 2]), name="kernel")
      self.bias = tf.Variable(tf.zeros([2]), name="bias")

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def __call__(self, x):
      return tf.matmul(x, self.kernel) + self.bias

  tf.saved_model.save(Head(), str(directory))
  return str(directory)


@pytest.fixture(scope="session")
def keras2_h5(tmp_path_factory, tf):
  """A Keras 2 HDF5 weights file (tf-keras `save_weights('x.h5')`)."""
  import tf_keras as keras

  directory = tmp_path_factory.mktemp("keras2_h5")
  model = keras.Sequential(
    [keras.Input((4,)), keras.layers.Dense(3, name="d1"), keras.layers.Dense(2, name="d2")]
  )
  path = str(directory / "weights.h5")
  model.save_weights(path)
  return path


@pytest.fixture(scope="session")
def keras3_files(tmp_path_factory, tf):
  """A Keras 3 `.weights.h5` and `.keras` of the same model (Keras 3 only)."""
  if not keras3_available():
    pytest.skip("Keras 3 is the modern environment's; this one has Keras 2")
  import keras
  import numpy as np

  directory = tmp_path_factory.mktemp("keras3")
  model = keras.Sequential(
    [
      keras.Input((4,)),
      keras.layers.Dense(3, name="d1"),
      keras.layers.BatchNormalization(name="bn"),
      keras.layers.Dense(2, name="d2"),
    ]
  )
  model.compile(optimizer="adam", loss="mse")
  model.fit(np.zeros((2, 4)), np.zeros((2, 2)), verbose=0)
  weights = str(directory / "model.weights.h5")
  archive = str(directory / "model.keras")
  model.save_weights(weights)
  model.save(archive)
  return weights, archive


@pytest.fixture(scope="session")
def odapi_checkpoint(tmp_path_factory):
  """An OD API SSD MobileNet V2 FPNLite model from the zoo config, shrunk to
  64x64 and 3 classes, built by the OD API's model builder and saved the way
  model_main_tf2 saves (root object 'model')."""
  if not HAS_ODAPI:
    pytest.skip(
      "the OD API is usable here only through the compat layer: OD_GUARD_COMPAT=auto (make test-modern's second run)"
    )
  from od_guard.testing import tiny_odapi

  config = tiny_odapi.load_pipeline_config(
    str(ZOO_COPIES / "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config")
  )
  small = tiny_odapi.shrink_pipeline_config(config, image_size=64, num_classes=3)
  model = tiny_odapi.build_model(small)
  directory = tmp_path_factory.mktemp("odapi_ckpt")
  return tiny_odapi.save_detection_checkpoint(model, str(directory))


class OdapiWorld:
  """A tiny, real OD API fine-tuning set-up shared by the preflight tests.

  Attributes:
    root: its directory.
    record, label_map: synthetic training data (3 classes, 64x64 images).
    base_config: the shrunk SSD MobileNet V2 zoo config (parsed message).
    checkpoints: name -> prefix of checkpoints saved by TF from real models:
      'detection' (model_main_tf2 layout), 'classification' (root
      feature_extractor), 'renamed' (model/CustomExtractor/...), 'weightless'.
  """

  IMAGE = 64
  CLASSES = 3

  def __init__(self, root: pathlib.Path):
    from od_guard.testing import tiny_odapi

    self.root = root
    self.record = tiny_odapi.write_synthetic_tfrecord(
      str(root / "data" / "train.record"),
      num_examples=4,
      image_size=self.IMAGE,
      num_classes=self.CLASSES,
    )
    self.label_map = tiny_odapi.write_label_map(
      str(root / "data" / "label_map.pbtxt"), self.CLASSES
    )
    self.base_config = tiny_odapi.load_pipeline_config(
      str(ZOO_COPIES / "ssd_mobilenet_v2_320x320_coco17_tpu-8.config")
    )
    model = tiny_odapi.build_model(self.config(checkpoint=""))
    self.checkpoints = {
      "detection": tiny_odapi.save_detection_checkpoint(model, str(root / "ckpt_detection")),
      "classification": tiny_odapi.save_classification_checkpoint(
        model, str(root / "ckpt_classification")
      ),
      "renamed": tiny_odapi.save_renamed_checkpoint(model, str(root / "ckpt_renamed")),
      "weightless": tiny_odapi.save_weightless_checkpoint(str(root / "ckpt_weightless")),
    }

  def config(
    self,
    *,
    checkpoint: str | None = None,
    checkpoint_type: str = "detection",
    zoo: str | None = None,
    image_size: int | None = None,
    num_classes: int | None = None,
    **train_fields,
  ):
    """A shrunk config message; `zoo` swaps in another zoo config's model (a
    file name in tests/data/zoo_configs)."""
    from od_guard.testing import tiny_odapi

    base = (
      self.base_config if zoo is None else tiny_odapi.load_pipeline_config(str(ZOO_COPIES / zoo))
    )
    config = tiny_odapi.shrink_pipeline_config(
      base,
      image_size=image_size or self.IMAGE,
      num_classes=num_classes or self.CLASSES,
      batch_size=2,
      num_steps=2,
      train_record=self.record,
      label_map=self.label_map_for(num_classes or self.CLASSES),
      fine_tune_checkpoint=self.checkpoints["detection"] if checkpoint is None else checkpoint,
      fine_tune_checkpoint_type=checkpoint_type,
    )
    for name, value in train_fields.items():
      setattr(config.train_config, name, value)
    return config

  def label_map_for(self, num_classes: int) -> str:
    """The world's label map, or one with `num_classes` items (a config with
    more classes comes with a label map that names them, as a user's would)."""
    from od_guard.testing import tiny_odapi

    if num_classes == self.CLASSES:
      return self.label_map
    return tiny_odapi.write_label_map(
      str(self.root / "data" / f"label_map_{num_classes}.pbtxt"), num_classes
    )

  def write_config(self, name: str, **kwargs) -> str:
    from od_guard.testing import tiny_odapi

    return tiny_odapi.write_pipeline_config(
      self.config(**kwargs), str(self.root / f"{name}.config")
    )


@pytest.fixture(scope="session")
def odapi_world(tmp_path_factory):
  if not HAS_ODAPI:
    pytest.skip(
      "the OD API is usable here only through the compat layer: OD_GUARD_COMPAT=auto (make test-modern's second run)"
    )
  return OdapiWorld(tmp_path_factory.mktemp("odapi_world"))
