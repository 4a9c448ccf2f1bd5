"""Makes the stock TF2 Object Detection API (2.8.0.post1) run on current stacks.

The OD API's last release predates TensorFlow 2.13, Keras 3, protobuf 4,
Pillow 10 and numpy 1.24; on each it fails before or during training. `install()`
applies, in this process only, the shims the installed stack needs, in one
order, before the first ``import tensorflow``:

====================  =========================================  ============================
shim (`active()`)     what it serves                             needed on
====================  =========================================  ============================
tf_keras              TF_USE_LEGACY_KERAS=1 (tf.keras = tf-keras)  TF >= 2.16 (Keras 3)
odapi_protos          the *_pb2 modules built from descriptors   protobuf >= 4 (not pure Python)
tf_estimator          a ModeKeys-only tf.compat.v1.estimator     TF >= 2.16
tensorflow_io         a stand-in for DeepMAC's one import        tensorflow-io not installed
tf_slim_control_flow  control_flow_ops.case/cond aliases         TF >= 2.13 (tf-slim 1.1.0)
pillow_getsize        FreeTypeFont.getsize from getbbox          Pillow >= 10
numpy_aliases         np.float / np.int / np.bool in 4 modules   numpy >= 1.24
====================  =========================================  ============================

On the stack the OD API was released for (TF 2.15, protobuf 3.20, tensorflow-io
installed) that leaves the last three. Nothing installed is edited, nothing
runs at import of this module, and no third-party code is copied: the OD API
modules the shims serve are intercepted by one import hook (a `sys.meta_path`
finder) when, and only if, the process imports them. `install()` imports
neither TensorFlow nor the OD API; where the OD API is not installed it applies
nothing, so that tf.keras stays Keras 3 for plain Keras users.

`install()` must run before TensorFlow is imported: TensorFlow chooses the
Keras behind tf.keras at its import. Where TF >= 2.16 was imported first
without TF_USE_LEGACY_KERAS, it raises `ImportOrderError` and changes nothing.
It is idempotent. The mode is "auto" (what the stack needs) or "off" (nothing);
without an argument it comes from OD_GUARD_COMPAT (default "auto").

Run any OD API module with the layer installed:

    python -m od_guard.odapi_compat object_detection.model_main_tf2 --pipeline_config_path=...

`inspect.getargspec` (gone in Python 3.11), which autoaugment_utils.py:1496
and :1526 call, needs no shim: both calls sit under ``if six.PY2:``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
import dataclasses
import importlib
import importlib.util
import os
import pathlib
import re
import runpy
import sys
import threading
import types

from od_guard import errors
from od_guard.odapi import config_schema

AUTO, OFF = "auto", "off"
MODES = (AUTO, OFF)
ENV = "OD_GUARD_COMPAT"
LEGACY_KERAS = "TF_USE_LEGACY_KERAS"

TF_KERAS = "tf_keras"
ODAPI_PROTOS = "odapi_protos"
TF_ESTIMATOR = "tf_estimator"
TENSORFLOW_IO = "tensorflow_io"
TF_SLIM_CONTROL_FLOW = "tf_slim_control_flow"
PILLOW_GETSIZE = "pillow_getsize"
NUMPY_ALIASES = "numpy_aliases"
# The order install() applies them in (tf_keras first: it must precede TF).
SHIMS = (
  TF_KERAS,
  ODAPI_PROTOS,
  TF_ESTIMATOR,
  TENSORFLOW_IO,
  TF_SLIM_CONTROL_FLOW,
  PILLOW_GETSIZE,
  NUMPY_ALIASES,
)

_PROTOS_PACKAGE = "object_detection.protos."
_TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly")


class CompatError(errors.OdGuardError):
  """od_guard's compat layer cannot make the OD API run here."""


class ImportOrderError(CompatError):
  """TensorFlow was imported before the compat layer, and a shim that must
  precede it is needed."""


class TfKerasMissingError(CompatError):
  """TF >= 2.16 routes tf.keras to Keras 3; the OD API needs tf-keras of the
  same minor release, which is not installed."""


class Tf1EntryPointError(CompatError, AttributeError):
  """A part of tf.estimator other than ModeKeys was used: the OD API's TF1
  entry points cannot run on TF >= 2.16. An AttributeError too, so that
  `hasattr` probes stay probes."""


class TensorflowIoMissingError(CompatError, AttributeError):
  """DeepMAC used tensorflow_io, for which od_guard holds only a stand-in."""


# What install() applied in this process (the layer's job is process state).
_lock = threading.Lock()
_active: list[str] = []
_done = False
_finder: _Finder | None = None
_aliased: list[str] = []  # the tf-slim aliases set, for apply()'s result


def active() -> tuple[str, ...]:
  """The shims installed in this process, in install order (empty before
  `install()`, or after mode "off"). A shim counts from its install, whether or
  not the module it serves has been imported yet."""
  return tuple(_active)


def requested_mode(mode: str | None = None) -> str:
  """`mode`, or OD_GUARD_COMPAT's value when `mode` is None (default "auto").

  Raises:
    UsageError: the mode is neither "auto" nor "off".
  """
  if mode is not None:
    if mode not in MODES:
      raise errors.UsageError(
        f"{mode!r} is not a compat mode.",
        received=f"mode={mode!r}",
        fix=f"Pass one of {', '.join(MODES)}.",
      )
    return mode
  value = os.environ.get(ENV, AUTO).strip().lower() or AUTO
  if value not in MODES:
    raise errors.UsageError(
      f"{ENV} names no compat mode.",
      received=f"{ENV}={os.environ.get(ENV)!r}",
      fix=f"Set it to {' or '.join(MODES)}, or unset it.",
    )
  return value


# --- the stack, from package metadata (nothing imported) ---------------------


def _normalized(name: str) -> str:
  return re.sub(r"[-_.]+", "_", name).lower()


def _dist_info_versions() -> dict[str, str]:
  """Normalized distribution name -> version, from the names of the
  ``*.dist-info`` directories on sys.path: a directory listing per entry,
  where importlib.metadata parses each METADATA file (~5 ms a package)."""
  found: dict[str, str] = {}
  for entry in sys.path:
    try:
      names = os.listdir(entry or ".")
    except OSError:
      continue
    for name in names:
      if name.endswith(".dist-info") and "-" in name:
        dist, version = name[: -len(".dist-info")].rsplit("-", 1)
        found.setdefault(_normalized(dist), version)
  return found


def _dist_version(*names: str, listing: dict[str, str] | None = None) -> str | None:
  for name in names:
    if listing is not None and _normalized(name) in listing:
      return listing[_normalized(name)]
  import importlib.metadata  # only here: importing it takes ~30 ms

  for name in names:  # eggs, editable and other installs the listing misses
    try:
      return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      continue
  return None


def _release(version: str | None) -> tuple[int, ...]:
  if not version:
    return ()
  return tuple(int(x) for x in re.findall(r"\d+", version.split("+")[0])[:3])


def _importable(module: str) -> bool:
  try:
    return importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):
    return False


@dataclasses.dataclass(frozen=True)
class Stack:
  """What decides which shims are needed, read without importing TensorFlow.

  Attributes:
    tensorflow: TF's version ('2.20.0'), from the imported module if TF is
      imported, else from package metadata; None when not installed.
    tf_imported: whether TensorFlow is already imported in this process.
    tf_legacy_keras: for an imported TF >= 2.16, whether it was imported with
      TF_USE_LEGACY_KERAS set (tf.keras is tf-keras); None otherwise.
    keras, tf_keras, protobuf, pillow, numpy: distribution versions or None.
    odapi: whether the OD API (object_detection) is installed.
    protos_load: whether the OD API's own *_pb2 modules load under this
      protobuf (protoc-3 output does not under protobuf >= 4, upb or C++).
    tensorflow_io, tf_slim: whether those modules are installed.
  """

  tensorflow: str | None
  tf_imported: bool
  tf_legacy_keras: bool | None
  keras: str | None
  tf_keras: str | None
  protobuf: str | None
  pillow: str | None
  numpy: str | None
  odapi: bool
  protos_load: bool
  tensorflow_io: bool
  tf_slim: bool

  @property
  def tf_release(self) -> tuple[int, ...]:
    return _release(self.tensorflow)


def stack() -> Stack:
  """This process's stack (see `Stack`)."""
  listing = _dist_info_versions()
  tf = sys.modules.get("tensorflow")
  tf_version = getattr(tf, "__version__", None) if tf is not None else None
  tf_version = tf_version or _dist_version(*_TF_DISTRIBUTIONS, listing=listing)
  legacy = None
  if tf is not None and _release(tf_version) >= (2, 16):
    legacy = getattr(tf, "_tf_uses_legacy_keras", None)
    if legacy is None:  # a TF without the attribute: judge by the variable
      legacy = _legacy_keras_set(os.environ)
  directory = config_schema.protos_dir()
  return Stack(
    tensorflow=tf_version,
    tf_imported=tf is not None,
    tf_legacy_keras=legacy,
    keras=_dist_version("keras", listing=listing),
    tf_keras=_dist_version("tf-keras", listing=listing),
    protobuf=_dist_version("protobuf", listing=listing),
    pillow=_dist_version("pillow", listing=listing),
    numpy=_dist_version("numpy", listing=listing),
    odapi=directory is not None,
    protos_load=directory is not None and config_schema.protoc3_modules_load(directory),
    tensorflow_io=_importable("tensorflow_io"),
    tf_slim=_importable("tf_slim"),
  )


def _legacy_keras_set(environ) -> bool:
  return environ.get(LEGACY_KERAS, None) in ("true", "True", "1")  # TF's own test


def needed(current: Stack | None = None) -> tuple[str, ...]:
  """The shims "auto" installs on `current` (default: this process's stack), in
  install order; empty where the OD API is not installed."""
  s = current or stack()
  if not s.odapi:
    return ()
  tf = s.tf_release
  want = {
    TF_KERAS: tf >= (2, 16),
    ODAPI_PROTOS: not s.protos_load,
    TF_ESTIMATOR: tf >= (2, 16),
    TENSORFLOW_IO: bool(tf) and not s.tensorflow_io,
    TF_SLIM_CONTROL_FLOW: tf >= (2, 13) and s.tf_slim,
    PILLOW_GETSIZE: _release(s.pillow) >= (10,),
    NUMPY_ALIASES: _release(s.numpy) >= (1, 24),
  }
  return tuple(name for name in SHIMS if want[name])


def tf_keras_requirement(tensorflow: str) -> str:
  """The pip requirement for the tf-keras that matches `tensorflow`:
  '2.20.0' -> 'tf-keras~=2.20.0'."""
  major, minor = _release(tensorflow)[:2]
  return f"tf-keras~={major}.{minor}.0"


def tf_keras_problem(s: Stack) -> TfKerasMissingError | None:
  """Why tf-keras cannot serve as tf.keras on `s` (TF >= 2.16), or None."""
  if s.tf_release < (2, 16):
    return None
  fix = f'pip install "{tf_keras_requirement(s.tensorflow)}"'
  if not s.tf_keras:
    return TfKerasMissingError(
      f"The OD API needs Keras 2 (tf-keras) as tf.keras; TensorFlow {s.tensorflow} ships "
      "Keras 3 only, and tf-keras is not installed.",
      received=f"tensorflow {s.tensorflow}, keras {s.keras or 'not installed'}, no tf-keras",
      fix=f"{fix} (the tf-keras release of TensorFlow's minor version), then run again.",
    )
  if _release(s.tf_keras)[:2] != s.tf_release[:2]:
    return TfKerasMissingError(
      f"tf-keras {s.tf_keras} does not match TensorFlow {s.tensorflow}: each tf-keras "
      "release is built for one TensorFlow minor version.",
      received=f"tensorflow {s.tensorflow}, tf-keras {s.tf_keras}",
      fix=f"{fix}, then run again.",
    )
  return None


def _refusal(s: Stack) -> ImportOrderError:
  return ImportOrderError(
    "od_guard's compat layer was asked for after TensorFlow was imported: TensorFlow "
    f"{s.tensorflow} chose Keras 3 for tf.keras at its import, and the OD API needs "
    "tf-keras there (TF_USE_LEGACY_KERAS=1 set before `import tensorflow`). Nothing was "
    "changed.",
    received=(
      f"tensorflow {s.tensorflow} already imported with {LEGACY_KERAS}="
      f"{os.environ.get(LEGACY_KERAS, 'unset')!s} at its import"
    ),
    fix=(
      "Call od_guard.odapi.compat.install() before anything imports TensorFlow, or run "
      "through `python -m od_guard.model_main_tf2` / `python -m od_guard.odapi_compat "
      f"MODULE`, or export {LEGACY_KERAS}=1 before starting Python."
    ),
  )


def install(mode: str | None = None, *, exclude: Collection[str] = ()) -> tuple[str, ...]:
  """Installs the shims this stack needs, in order; returns `active()`.

  Call it before the first ``import tensorflow``. The first call that does
  not raise decides for the process: later calls, whatever their mode, do
  nothing and return the same (so that `--guard_compat=off`, installed first by
  an entry point, stays off when library code calls `apply()` later).

  Args:
    mode: "auto" (what `needed()` lists) or "off" (nothing); None reads
      OD_GUARD_COMPAT (default "auto").
    exclude: shims (names of SHIMS) to leave out, to see what one of them
      clears (the tests do) or to rule one out.

  Raises:
    ImportOrderError: TF >= 2.16 is already imported without
      TF_USE_LEGACY_KERAS; nothing was changed.
    TfKerasMissingError: TF >= 2.16 and no tf-keras of its minor version;
      nothing was changed.
    UsageError: `mode` (or OD_GUARD_COMPAT) is not a mode, or `exclude` names
      no shim.
  """
  global _done
  unknown = sorted(set(exclude) - set(SHIMS))
  if unknown or isinstance(exclude, str):
    raise errors.UsageError(
      "exclude names no shim of od_guard's compat layer.",
      received=f"exclude={exclude!r}",
      fix=f"Pass a collection of: {', '.join(SHIMS)}.",
    )
  off = requested_mode(mode) == OFF
  with _lock:
    if _done or off:
      _done = True
      return active()
    s = stack()
    plan = tuple(name for name in needed(s) if name not in exclude)
    if TF_KERAS in plan:
      problem = tf_keras_problem(s)
      if problem is not None:
        raise problem
      if s.tf_imported and not s.tf_legacy_keras:
        raise _refusal(s)
    hooks: dict[str, list[_Hook]] = {}
    for name in plan:
      _INSTALLERS[name](s, hooks)
    if hooks or ODAPI_PROTOS in plan:
      _install_finder(hooks, protos=ODAPI_PROTOS in plan)
    _active.extend(plan)
    _done = True
    return active()


def apply() -> list[str]:
  """`install()` under the name od_guard's callers have used, with its old
  result: the tf-slim aliases it set in TensorFlow (importing TF to set them
  now, as before); empty when they are in place already, or not needed.

  Raises:
    as `install()`.
  """
  start = len(_aliased)
  install()
  if TF_SLIM_CONTROL_FLOW in _active:
    _alias_control_flow_ops()
  return _aliased[start:]


# --- the import hook -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Hook:
  """Runs around the execution of one module: `before()` just before its
  code runs, `after(module)` just after."""

  before: Callable[[], None] | None = None
  after: Callable[[types.ModuleType], None] | None = None


class _HookedLoader:
  """A module's own loader, with a hook around `exec_module`; everything else
  (get_source, get_resource_reader ...) is the real loader's."""

  def __init__(self, loader, hooks: list[_Hook]):
    self._loader = loader
    self._hooks = hooks

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    for hook in self._hooks:
      if hook.before:
        hook.before()
    self._loader.exec_module(module)
    for hook in self._hooks:
      if hook.after:
        hook.after(module)

  def __getattr__(self, name):
    return getattr(self._loader, name)


class _DescriptorLoader:
  """Builds an OD API `*_pb2` module from the serialized FileDescriptorProto
  its protoc-3 generated file carries (read with `ast`, never executed), with
  the calls current protoc output makes: the file added to the default
  descriptor pool, then protobuf's builder makes its messages and enums."""

  def __init__(self, path: str):
    self._path = path

  def create_module(self, spec):
    return None

  def exec_module(self, module):
    from google.protobuf import descriptor_pb2
    from google.protobuf import descriptor_pool
    from google.protobuf.internal import builder

    source = pathlib.Path(self._path).read_text(encoding="utf-8")
    data = config_schema.serialized_descriptor(source, self._path)
    for dependency in descriptor_pb2.FileDescriptorProto.FromString(data).dependency:
      importlib.import_module(dependency[: -len(".proto")].replace("/", ".") + "_pb2")
    descriptor = descriptor_pool.Default().AddSerializedFile(data)
    module.DESCRIPTOR = descriptor
    builder.BuildMessageAndEnumDescriptors(descriptor, module.__dict__)
    builder.BuildTopDescriptorsAndMessages(descriptor, module.__name__, module.__dict__)

  def get_source(self, name):
    return pathlib.Path(self._path).read_text(encoding="utf-8")


class _Finder:
  """The layer's one `sys.meta_path` entry: finds the hooked modules with the
  finders after it and wraps their loaders. `builds_odapi_protos` tells
  config_schema that the OD API's protos load (without importing this module)."""

  def __init__(self, hooks: dict[str, list[_Hook]], protos: bool):
    self.hooks = hooks
    self.builds_odapi_protos = protos

  def _real_spec(self, fullname, path, target):
    for finder in sys.meta_path:
      find = getattr(finder, "find_spec", None)
      if finder is self or find is None:
        continue
      spec = find(fullname, path, target)
      if spec is not None:
        return spec
    return None

  def find_spec(self, fullname, path=None, target=None):
    proto = (
      self.builds_odapi_protos
      and fullname.startswith(_PROTOS_PACKAGE)
      and fullname.endswith("_pb2")
      and "." not in fullname[len(_PROTOS_PACKAGE) :]
    )
    if not proto and fullname not in self.hooks:
      return None
    spec = self._real_spec(fullname, path, target)
    if spec is None or spec.loader is None:
      return spec
    if proto and spec.origin and spec.origin.endswith(".py"):
      spec.loader = _DescriptorLoader(spec.origin)
    if fullname in self.hooks:
      spec.loader = _HookedLoader(spec.loader, self.hooks[fullname])
    return spec

  def invalidate_caches(self):
    pass


def _install_finder(hooks: dict[str, list[_Hook]], protos: bool) -> None:
  global _finder
  _finder = _Finder(hooks, protos)
  sys.meta_path.insert(0, _finder)
  for name, module_hooks in hooks.items():  # already imported: the hook runs now
    module = sys.modules.get(name)
    if module is not None:
      for hook in module_hooks:
        if hook.before:
          hook.before()
        if hook.after:
          hook.after(module)


def _hook(hooks: dict[str, list[_Hook]], modules, **kwargs) -> None:
  for name in modules:
    hooks.setdefault(name, []).append(_Hook(**kwargs))


# --- the shims, in install order -------------------------------------------------


def _install_tf_keras(s: Stack, hooks) -> None:
  """TF_USE_LEGACY_KERAS=1, so that tf.keras is tf-keras (Keras 2).

  Serves object_detection/core/freezable_sync_batch_norm.py:20
  (``tf.keras.layers.experimental.SyncBatchNormalization``, gone in Keras 3:
  "AttributeError: module 'keras._tf_keras.keras.layers' has no attribute
  'experimental'") and the OD API's other Keras 2 uses. Needed on TF >= 2.16,
  whose tf.keras is Keras 3; TensorFlow reads the variable at its import (and
  tf.keras's at first use), so this shim must precede TF. install() has checked
  that tf-keras of TF's minor version is installed.
  """
  os.environ[LEGACY_KERAS] = "1"


def _install_odapi_protos(s: Stack, hooks) -> None:
  """The OD API's 34 ``object_detection/protos/*_pb2`` modules, built from the
  serialized descriptors they carry.

  Serves object_detection/protos/string_int_label_map_pb2.py:33 (the first one
  imported, from model_lib_v2.py:29 through eval_util and label_map_util) and
  every other *_pb2.py: protoc-3 output, which protobuf >= 4 with upb or C++
  refuses ("TypeError: Descriptors cannot be created directly"). The modules
  get the same messages, enums and descriptors (in the default pool, where the
  OD API's code finds them), and od_guard's config reading uses them too
  (`config_schema.generated_modules_load`). Needed on protobuf >= 4 (TF >= 2.16
  requires it) unless PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python.
  """


def _install_tf_estimator(s: Stack, hooks) -> None:
  """A ``tf.compat.v1.estimator`` holding ``ModeKeys`` only.

  Serves object_detection/inputs.py:24 and model_lib.py:26 (``from
  tensorflow.compat.v1 import estimator as tf_estimator``; model_lib_v2.py:30-31
  imports both: "ImportError: cannot import name 'estimator' from
  'tensorflow.compat.v1'"). The TF2 path (train_loop, eval_continuously,
  exporter_lib_v2) uses only ModeKeys; anything else raises
  `Tf1EntryPointError`, naming the TF1 entry points that cannot work. Needed on
  TF >= 2.16, which removed tf.estimator. Set just before either module runs.
  """

  def before() -> None:
    import tensorflow as tf

    if not hasattr(tf.compat.v1, "estimator"):
      tf.compat.v1.estimator = _estimator_stand_in(tf.__version__)

  _hook(hooks, ("object_detection.inputs", "object_detection.model_lib"), before=before)


class ModeKeys:
  """tf.estimator.ModeKeys, as TF <= 2.15 defines it."""

  TRAIN = "train"
  EVAL = "eval"
  PREDICT = "infer"


def _estimator_stand_in(tf_version: str) -> types.ModuleType:
  module = types.ModuleType(
    "tensorflow.compat.v1.estimator",
    "od_guard's stand-in for tf.estimator (removed in TF 2.16): ModeKeys only.",
  )
  module.ModeKeys = ModeKeys

  def __getattr__(name: str):
    if name.startswith("_"):
      raise AttributeError(name)
    raise Tf1EntryPointError(
      f"tf.estimator.{name} is not available: TensorFlow {tf_version} has no tf.estimator "
      "(removed in 2.16), and od_guard's stand-in holds only ModeKeys, which the OD API's "
      "TF2 path uses.",
      received=f"tf.compat.v1.estimator.{name}",
      fix=(
        "The OD API's TF1 entry points cannot run on this TensorFlow: model_main.py, "
        "model_tpu_main.py, model_lib.create_estimator_and_inputs / "
        "create_train_and_eval_specs and inputs.create_predict_input_fn. Use the TF2 ones "
        "(model_main_tf2.py to train and evaluate, exporter_main_v2.py to export), or "
        "TensorFlow <= 2.15 with tensorflow-estimator for TF1."
      ),
    )

  module.__getattr__ = __getattr__
  return module


def _install_tensorflow_io(s: Stack, hooks) -> None:
  """A ``tensorflow_io`` stand-in, importable only while
  object_detection/meta_architectures/deepmac_meta_arch.py runs.

  Serves deepmac_meta_arch.py:28 (``import tensorflow_io as tfio``, run for
  every model: model_builder imports DeepMAC; "ModuleNotFoundError: No module
  named 'tensorflow_io'"). Its only use, the colour-consistency loss's
  ``tfio.experimental.color.rgb_to_lab`` (line 1795, DeepMAC training), raises
  `TensorflowIoMissingError`. Needed on every TF2 where tensorflow-io is not
  installed (the OD API's metadata asks for it; installs that skip the OD API's
  dependencies, as TF >= 2.16 requires, lack it).
  """
  stand_in = _tensorflow_io_stand_in(s.tensorflow or "")
  saved: list = []

  def before() -> None:
    saved.append(sys.modules.get("tensorflow_io"))
    sys.modules["tensorflow_io"] = stand_in

  def after(module) -> None:
    if sys.modules.get("tensorflow_io") is stand_in:
      previous = saved.pop() if saved else None
      if previous is None:
        del sys.modules["tensorflow_io"]
      else:
        sys.modules["tensorflow_io"] = previous

  _hook(
    hooks, ("object_detection.meta_architectures.deepmac_meta_arch",), before=before, after=after
  )


def _tensorflow_io_stand_in(tf_version: str) -> types.ModuleType:
  module = types.ModuleType(
    "tensorflow_io",
    "od_guard's stand-in for tensorflow_io, seen only by deepmac_meta_arch: raises on use.",
  )

  def __getattr__(name: str):
    if name.startswith("_"):
      raise AttributeError(name)
    raise TensorflowIoMissingError(
      "DeepMAC's colour-consistency loss needs tensorflow_io (rgb_to_lab), which is not "
      "installed; od_guard's stand-in only let deepmac_meta_arch import.",
      received=f"tensorflow_io.{name} (object_detection/meta_architectures/"
      "deepmac_meta_arch.py:1795), tensorflow " + (tf_version or "unknown"),
      fix=(
        "Install a tensorflow-io release built for your TensorFlow to train DeepMAC "
        "(`pip install tensorflow-io`); every other model trains without it."
      ),
    )

  module.__getattr__ = __getattr__
  return module


def _install_tf_slim_control_flow(s: Stack, hooks) -> None:
  """``control_flow_ops.case`` and ``.cond`` aliased back in TensorFlow.

  Serves tf_slim/data/tfexample_decoder.py:278, :439 (cond) and :453 (case)
  (tf-slim 1.1.0, the newest), which the OD API's TfExampleDecoder (object_detection/data_decoders/
  tf_example_decoder.py) uses for every image: TF 2.13 moved both functions to
  their own modules, so the first training step fails with "AttributeError:
  module 'tensorflow.python.ops.control_flow_ops' has no attribute 'case'".
  Needed on TF >= 2.13. Set just before tfexample_decoder runs.
  """
  _hook(hooks, ("tf_slim.data.tfexample_decoder",), before=_alias_control_flow_ops)


def _alias_control_flow_ops() -> list[str]:
  from tensorflow.python.ops import control_flow_ops

  aliased = []
  if not hasattr(control_flow_ops, "case"):
    from tensorflow.python.ops import control_flow_case

    control_flow_ops.case = control_flow_case.case
    aliased.append("control_flow_ops.case")
  if not hasattr(control_flow_ops, "cond"):
    from tensorflow.python.ops import cond

    control_flow_ops.cond = cond.cond
    aliased.append("control_flow_ops.cond")
  _aliased.extend(aliased)
  return aliased


def _install_pillow_getsize(s: Stack, hooks) -> None:
  """``getsize`` on Pillow's fonts, built from ``getbbox``.

  Serves object_detection/utils/visualization_utils.py:219 and :229
  (``font.getsize(...)``, the eval images model_lib_v2 draws: "AttributeError:
  'FreeTypeFont' object has no attribute 'getsize'", tensorflow/models#11040).
  Pillow 10 removed it; Pillow 9's getsize was the size plus the offset, which
  is getbbox's right and bottom. Needed on Pillow >= 10, on every TF. Set just
  before visualization_utils runs.
  """
  _hook(hooks, ("object_detection.utils.visualization_utils",), before=_add_getsize)


def _getsize(self, text, *args, **kwargs):
  """(width, height) of `text` as Pillow < 10's getsize gave it: od_guard's
  compat layer, for the OD API's visualization_utils."""
  _, _, right, bottom = self.getbbox(text, *args, **kwargs)
  return right, bottom


def _add_getsize() -> None:
  from PIL import ImageFont

  for cls in (ImageFont.ImageFont, ImageFont.FreeTypeFont):
    if not hasattr(cls, "getsize"):
      cls.getsize = _getsize


# OD API modules that use numpy's removed aliases, with the file:line they serve.
_NUMPY_ALIAS_USERS = (
  "object_detection.utils.metrics",  # :45, :98 (np.float, np.bool; PASCAL VOC, OID)
  "object_detection.metrics.coco_evaluation",  # :1766-1830 (np.bool; panoptic quality)
  "object_detection.metrics.tf_example_parser",  # :36 (np.float; offline eval)
  "object_detection.nets.mobilenet.mobilenet_v3",  # :751 (np.int; reduced tail)
)
# The aliases numpy removed in 1.24 (np.bool came back in 2.0, as np.bool_),
# as numpy < 1.24 defined them: the builtins.
_NUMPY_REMOVED = {"bool": bool, "float": float, "int": int, "complex": complex, "object": object}


def _install_numpy_aliases(s: Stack, hooks) -> None:
  """``np.float`` / ``np.int`` / ``np.bool``, seen only by the OD API modules
  that use them.

  Serves object_detection/utils/metrics.py:45 and :98, metrics/
  coco_evaluation.py:1766-1830, metrics/tf_example_parser.py:36 and nets/
  mobilenet/mobilenet_v3.py:751 ("AttributeError: module 'numpy' has no
  attribute 'float'"). numpy 1.24 removed the aliases (np.bool is back in 2.0).
  Each of those modules gets, as its ``np``, a copy of numpy's namespace with
  the missing aliases added; numpy itself is left as it is. Needed on
  numpy >= 1.24, on every TF. Set just after each module runs.
  """
  _hook(hooks, _NUMPY_ALIAS_USERS, after=_give_numpy_aliases)


def _numpy_with_aliases(numpy) -> types.ModuleType:
  proxy = types.ModuleType(numpy.__name__, numpy.__doc__)
  proxy.__dict__.update(numpy.__dict__)
  for name, value in _NUMPY_REMOVED.items():
    if name not in numpy.__dict__:
      proxy.__dict__[name] = value
  proxy.__getattr__ = lambda name: getattr(numpy, name)  # numpy's lazy attributes
  return proxy


def _give_numpy_aliases(module: types.ModuleType) -> None:
  numpy = getattr(module, "np", None)
  if (
    isinstance(numpy, types.ModuleType)
    and numpy.__name__ == "numpy"
    and not all(name in numpy.__dict__ for name in _NUMPY_REMOVED)
  ):
    module.np = _numpy_with_aliases(numpy)


_INSTALLERS = {
  TF_KERAS: _install_tf_keras,
  ODAPI_PROTOS: _install_odapi_protos,
  TF_ESTIMATOR: _install_tf_estimator,
  TENSORFLOW_IO: _install_tensorflow_io,
  TF_SLIM_CONTROL_FLOW: _install_tf_slim_control_flow,
  PILLOW_GETSIZE: _install_pillow_getsize,
  NUMPY_ALIASES: _install_numpy_aliases,
}


def describe_shim(name: str) -> str:
  """The first line of the shim's docstring (for reports and the doctor)."""
  doc = _INSTALLERS[name].__doc__ or ""
  return " ".join(doc.strip().split("\n\n")[0].split())


def main(argv: list[str] | None = None) -> None:
  """Runs `argv[0]` as ``__main__`` with the layer installed (mode from
  OD_GUARD_COMPAT)."""
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0].startswith("-"):
    sys.exit(
      "usage: python -m od_guard.odapi_compat MODULE [FLAGS...]\n"
      "e.g.  python -m od_guard.odapi_compat object_detection.model_main_tf2 "
      "--pipeline_config_path=pipeline.config --model_dir=train\n"
      f"{ENV}=off runs MODULE without od_guard's compat layer."
    )
  try:
    install()
  except errors.OdGuardError as e:
    sys.exit(f"od_guard.odapi_compat: {e.format()}")
  module = argv[0]
  sys.argv = [module] + argv[1:]
  runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
  main()
