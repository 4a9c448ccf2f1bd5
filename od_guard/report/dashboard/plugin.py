"""The od_guard TensorBoard plugin: routes over the reports in the logdir.

A dynamic plugin (`frontend_metadata` names the ES module this plugin serves;
the frontend fetches nothing from anywhere else). It reads only through
TensorBoard's data provider (`list_blob_sequences`, `read_blob_sequences`,
`read_blob`), so it works with the multiplexer and with the Rust data server.

Routes (under ``data/plugin/od_guard/``), all fixed:

* ``/index.js``, ``/style.css``: the frontend.
* ``/runs``: every run with od_guard data: its reports' headers (verdict,
  checkpoint, config, counts) and its naming checks.
* ``/report?run=&tag=&step=``: one report without its variable lists.
* ``/variables?run=&tag=&step=``: its variable table, as columns.
* ``/naming?run=[&step=]``: the naming checks over steps; with ``step``, the
  violations found at that save.
* ``/compare?run_a=&run_b=[&tag_a=&step_a=&tag_b=&step_b=]``: what changed.

`run` and `tag` must name a run and tag that hold od_guard data (anything else
is refused before any read); `step` must be an integer that exists; `tag` and
`step` default to the run's latest report.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
import json
import os
import re
import threading
from typing import Any

from tensorboard import errors as tb_errors
from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.backend import json_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
from tensorboard.util import tb_logging
from werkzeug import wrappers

from od_guard.checkpoint import key_folding
from od_guard.report.dashboard import metadata
from od_guard.report.dashboard import views

_LOG = tb_logging.get_logger()
_STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
# Every report is kept: a run has a handful of preflight reports and one naming
# record per save that broke a rule.
_DOWNSAMPLE = 1_000_000
_MAX_PARAM = 2048
_STEP = re.compile(r"^-?\d{1,19}$")
_NAMING_DETAIL_LIMIT = 5000
_REPORT_KINDS = (metadata.PREFLIGHT, metadata.VERIFICATION)


def _read_static(name: str) -> bytes:
  with open(os.path.join(_STATIC, name), "rb") as f:
    return f.read()


def _json(request, value: Any, code: int = 200):
  # Serialised here: Respond's own Cleanse walk is slow on 50,000 rows, and
  # only needed for the NaN a record might hold.
  try:
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
  except ValueError:
    text = json.dumps(json_util.Cleanse(value), separators=(",", ":"))
  return http_util.Respond(request, text, "application/json", code)


def _param(request, name: str, *, required: bool = True) -> str | None:
  value = request.args.get(name)
  if value is None:
    if required:
      raise tb_errors.InvalidArgumentError(
        f"Missing query parameter {name!r}. Pass ?{name}=... as listed by /runs."
      )
    return None
  if len(value) > _MAX_PARAM or "\x00" in value:
    raise tb_errors.InvalidArgumentError(
      f"Query parameter {name!r} is not a run or tag name ({len(value)} characters)."
    )
  return value


def _step_param(request, name: str) -> int | None:
  value = _param(request, name, required=False)
  if value is None or value == "":
    return None
  if not _STEP.match(value):
    raise tb_errors.InvalidArgumentError(
      f"Query parameter {name!r} must be an integer step. Received: {name}={value[:40]!r}"
    )
  return int(value)


class _Lru:
  """A small thread-safe LRU cache (TensorBoard serves requests on threads).

  Single-flight: concurrent requests for one key (the page asks for a report
  and its variable table at once) compute it once.
  """

  def __init__(self, size: int):
    self._size = size
    self._items: collections.OrderedDict = collections.OrderedDict()
    self._pending: dict[Any, threading.Event] = {}
    self._lock = threading.Lock()

  def get(self, key, make: Callable[[], Any]):
    with self._lock:
      if key in self._items:
        self._items.move_to_end(key)
        return self._items[key]
      pending = self._pending.get(key)
      owner = pending is None
      if owner:
        pending = self._pending[key] = threading.Event()
    if not owner:
      pending.wait()
      with self._lock:
        if key in self._items:
          return self._items[key]
      return make()  # the first request failed; this one reports its own error
    try:
      value = make()
      with self._lock:
        self._items[key] = value
        while len(self._items) > self._size:
          self._items.popitem(last=False)
      return value
    finally:
      with self._lock:
        del self._pending[key]
      pending.set()


class OdGuardPlugin(base_plugin.TBPlugin):
  """Renders od_guard reports: runs, verdicts, findings, variable fates, naming."""

  plugin_name = metadata.PLUGIN_NAME

  def __init__(self, context: base_plugin.TBContext):
    self._data_provider = context.data_provider
    self._index_js = _read_static("index.js")
    self._style_css = _read_static("style.css")
    self._records = _Lru(6)  # parsed records (a 50,000-variable report is ~10 MB)
    self._tables = _Lru(6)  # variable tables
    self._headers = _Lru(20_000)

  def is_active(self) -> bool:
    # Activation comes from data_plugin_names(): TensorBoard shows the
    # dashboard when any run holds a summary of this plugin.
    return False

  def frontend_metadata(self) -> base_plugin.FrontendMetadata:
    return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="od_guard")

  def get_plugin_apps(self) -> dict:
    return {
      "/index.js": self._serve_index_js,
      "/style.css": self._serve_style_css,
      "/runs": self._serve_runs,
      "/report": self._serve_report,
      "/variables": self._serve_variables,
      "/naming": self._serve_naming,
      "/compare": self._serve_compare,
    }

  # Reading.

  def _index(self, ctx, experiment: str) -> dict[str, dict[str, str]]:
    """run -> tag -> kind, for every od_guard summary this dashboard can read."""
    listing = self._data_provider.list_blob_sequences(
      ctx, experiment_id=experiment, plugin_name=metadata.PLUGIN_NAME
    )
    out: dict[str, dict[str, str]] = {}
    for run, tags in listing.items():
      for tag, series in tags.items():
        try:
          kind = metadata.parse_plugin_content(series.plugin_content)
        except metadata.UnknownContentError as e:
          _LOG.warning("od_guard dashboard: skipping %r / %r: %s", run, tag, e)
          continue
        out.setdefault(run, {})[tag] = kind
    return out

  def _data(self, ctx, experiment: str, run: str, tag: str) -> list:
    result = self._data_provider.read_blob_sequences(
      ctx,
      experiment_id=experiment,
      plugin_name=metadata.PLUGIN_NAME,
      downsample=_DOWNSAMPLE,
      run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]),
    )
    return sorted(result.get(run, {}).get(tag, []), key=lambda d: (d.wall_time, d.step))

  def _blob(self, ctx, datum, index: int, cache: _Lru):
    if len(datum.values) <= index:
      raise tb_errors.NotFoundError(f"The od_guard summary at step {datum.step} is incomplete.")
    ref = datum.values[index]

    def load():
      raw = self._data_provider.read_blob(ctx, blob_key=ref.blob_key)
      try:
        return json.loads(raw)
      except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise tb_errors.NotFoundError(
          f"The od_guard summary at step {datum.step} does not hold JSON."
        ) from e

    return cache.get((ref.blob_key, datum.wall_time), load)

  def _header(self, ctx, datum) -> dict:
    value = self._blob(ctx, datum, metadata.HEADER, self._headers)
    return value if isinstance(value, dict) else {}

  def _record(self, ctx, datum) -> dict:
    value = self._blob(ctx, datum, metadata.RECORD, self._records)
    if not isinstance(value, dict):
      raise tb_errors.NotFoundError(f"The od_guard record at step {datum.step} is not an object.")
    return value

  def _resolve(
    self, request, ctx, experiment: str, *, suffix: str = "", kinds=_REPORT_KINDS
  ) -> tuple[str, str, str, Any]:
    """(run, tag, kind, datum) named by the request's run/tag/step parameters."""
    run = _param(request, "run" + suffix)
    tag = _param(request, "tag" + suffix, required=False)
    step = _step_param(request, "step" + suffix)
    index = self._index(ctx, experiment)
    tags = index.get(run)
    if tags is None:
      raise tb_errors.NotFoundError(
        f"No od_guard data in run {run[:200]!r}. The runs that have some are listed by /runs."
      )
    if tag in (None, ""):
      candidates = [t for t, k in tags.items() if k in kinds]
      preferred = [metadata.TAGS[k] for k in kinds if metadata.TAGS[k] in candidates]
      tag = (preferred or sorted(candidates) or [None])[0]
      if tag is None:
        raise tb_errors.NotFoundError(
          f"Run {run[:200]!r} has no od_guard {' or '.join(kinds)} data."
        )
    elif tags.get(tag) not in kinds:
      raise tb_errors.NotFoundError(
        f"Run {run[:200]!r} has no od_guard {' or '.join(kinds)} data under tag {tag[:200]!r}."
      )
    data = self._data(ctx, experiment, run, tag)
    if step is not None:
      data = [d for d in data if d.step == step]
    if not data:
      raise tb_errors.NotFoundError(f"Run {run[:200]!r}, tag {tag[:200]!r} has no step {step}.")
    return run, tag, tags[tag], data[-1]

  def _table(self, ctx, datum) -> dict:
    ref = datum.values[metadata.RECORD]
    return self._tables.get(
      (ref.blob_key, datum.wall_time), lambda: views.variable_table(self._record(ctx, datum))
    )

  # Routes.

  @wrappers.Request.application
  def _serve_index_js(self, request):
    return http_util.Respond(request, self._index_js, "text/javascript")

  @wrappers.Request.application
  def _serve_style_css(self, request):
    return http_util.Respond(request, self._style_css, "text/css")

  @wrappers.Request.application
  def _serve_runs(self, request):
    ctx = plugin_util.context(request.environ)
    experiment = plugin_util.experiment_id(request.environ)
    index = self._index(ctx, experiment)
    runs = []
    for run in sorted(index, key=key_folding.natural_key):
      entry: dict[str, Any] = {"run": run, "reports": [], "naming": None, "decision": None}
      for tag, kind in sorted(index[run].items()):
        data = self._data(ctx, experiment, run, tag)
        if not data:
          continue
        if kind == metadata.NAMING:
          headers = [self._header(ctx, d) for d in data]
          entry["naming"] = {
            "tag": tag,
            "saves": len(data),
            "violations": sum(int(h.get("violations") or 0) for h in headers),
            "last_step": max(d.step for d in data),
          }
          continue
        latest = data[-1]
        entry["reports"].append(
          {
            "tag": tag,
            "kind": kind,
            "step": latest.step,
            "wall_time": latest.wall_time,
            "header": self._header(ctx, latest),
            "steps": [{"step": d.step, "wall_time": d.wall_time} for d in data],
          }
        )
      entry["reports"].sort(key=lambda r: (_REPORT_KINDS.index(r["kind"]), r["tag"]))
      if entry["reports"]:
        entry["decision"] = entry["reports"][0]["header"].get("decision")
      elif entry["naming"]:
        entry["decision"] = "warn" if entry["naming"]["violations"] else "pass"
      runs.append(entry)
    return _json(request, {"runs": runs})

  @wrappers.Request.application
  def _serve_report(self, request):
    ctx = plugin_util.context(request.environ)
    experiment = plugin_util.experiment_id(request.environ)
    run, tag, kind, datum = self._resolve(request, ctx, experiment)
    record = self._record(ctx, datum)
    return _json(
      request,
      {
        "run": run,
        "tag": tag,
        "kind": kind,
        "step": datum.step,
        "wall_time": datum.wall_time,
        "header": self._header(ctx, datum),
        "report": views.report_view(record) if kind == metadata.PREFLIGHT else record,
      },
    )

  @wrappers.Request.application
  def _serve_variables(self, request):
    ctx = plugin_util.context(request.environ)
    experiment = plugin_util.experiment_id(request.environ)
    run, tag, _, datum = self._resolve(request, ctx, experiment, kinds=(metadata.PREFLIGHT,))
    table = self._table(ctx, datum)
    return _json(request, {"run": run, "tag": tag, "step": datum.step, **table})

  @wrappers.Request.application
  def _serve_naming(self, request):
    ctx = plugin_util.context(request.environ)
    experiment = plugin_util.experiment_id(request.environ)
    if _step_param(request, "step") is not None:
      run, tag, _, datum = self._resolve(request, ctx, experiment, kinds=(metadata.NAMING,))
      record = self._record(ctx, datum)
      violations = record.get("violations") or []
      return _json(
        request,
        {
          "run": run,
          "tag": tag,
          "step": datum.step,
          "checkpoint": record.get("checkpoint", ""),
          "total": len(violations),
          "violations": violations[:_NAMING_DETAIL_LIMIT],
        },
      )
    run = _param(request, "run")
    tags = self._index(ctx, experiment).get(run)
    if tags is None:
      raise tb_errors.NotFoundError(
        f"No od_guard data in run {run[:200]!r}. The runs that have some are listed by /runs."
      )
    saves = []
    for tag, kind in tags.items():
      if kind == metadata.NAMING:
        saves += [
          (d.step, d.wall_time, self._header(ctx, d)) for d in self._data(ctx, experiment, run, tag)
        ]
    return _json(request, {"run": run, **views.naming_timeline(saves)})

  @wrappers.Request.application
  def _serve_compare(self, request):
    ctx = plugin_util.context(request.environ)
    experiment = plugin_util.experiment_id(request.environ)
    kinds = (metadata.PREFLIGHT,)
    run_a, tag_a, _, datum_a = self._resolve(request, ctx, experiment, suffix="_a", kinds=kinds)
    run_b, tag_b, _, datum_b = self._resolve(request, ctx, experiment, suffix="_b", kinds=kinds)
    diff = views.compare(
      self._record(ctx, datum_a),
      self._record(ctx, datum_b),
      table_a=self._table(ctx, datum_a),
      table_b=self._table(ctx, datum_b),
    )
    return _json(
      request,
      {
        "a": {"run": run_a, "tag": tag_a, "step": datum_a.step},
        "b": {"run": run_b, "tag": tag_b, "step": datum_b.step},
        **diff,
      },
    )


class OdGuardLoader(base_plugin.TBLoader):
  """Loads the plugin (the `tensorboard_plugins` entry point).

  TensorBoard keeps 10 samples per time series of plugins it does not know;
  od_guard's reports are few and each matters (a naming record per save that
  broke a rule), so unless ``--samples_per_plugin`` says otherwise, all are kept.
  """

  def fix_flags(self, flags) -> None:
    samples = getattr(flags, "samples_per_plugin", None)
    if isinstance(samples, dict):
      samples.setdefault(metadata.PLUGIN_NAME, 0)  # 0: keep every sample

  def load(self, context: base_plugin.TBContext) -> OdGuardPlugin:
    return OdGuardPlugin(context)
