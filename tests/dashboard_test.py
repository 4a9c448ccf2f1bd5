"""The od_guard TensorBoard plugin's routes, against a real TensorBoard server
(127.0.0.1, a free port) over event files written by real runs: the OD API
drop-in (odapi environment), Keras fits with the restore guard, `od-guard check
--static` and the TF-free writer."""

from __future__ import annotations

import json
import os
import urllib.parse

import pytest
from support import dashboard_runs

from od_guard.report.dashboard import metadata

from conftest import HAS_ODAPI

PLUGIN = "/data/plugin/od_guard"
HOSTILE = dashboard_runs.HOSTILE_RUN


@pytest.fixture(scope="session")
def world(tmp_path_factory, request):
  return dashboard_runs.build_logdir(
    str(tmp_path_factory.getbasetemp() / "dashboard_world"),
    odapi_world=(lambda: request.getfixturevalue("odapi_world")) if HAS_ODAPI else None,
  )


@pytest.fixture(scope="module")
def server(world):
  with dashboard_runs.TensorBoardServer(world["logdir"]) as tb:
    tb.wait_for_runs(set(world["runs"]))
    yield tb


def _q(**params) -> str:
  return urllib.parse.urlencode(params)


def _renamed_run(world) -> str:
  return "odapi_renamed/train" if world["odapi"] else "keras_renamed/train"


def _good_run(world) -> str:
  return "odapi_good/train" if world["odapi"] else "keras_good/train"


def test_plugin_is_listed_as_a_dynamic_plugin_with_its_own_module(server):
  listing = server.get_json("/data/plugins_listing")
  assert listing["od_guard"]["enabled"] is True
  assert listing["od_guard"]["loading_mechanism"] == {
    "type": "IFRAME",
    "module_path": f"{PLUGIN}/index.js",
  }
  status, headers, body = server.get(f"{PLUGIN}/index.js")
  assert status == 200 and headers["Content-Type"].startswith("text/javascript")
  assert b"export async function render()" in body
  status, headers, _ = server.get(f"{PLUGIN}/style.css")
  assert status == 200 and headers["Content-Type"].startswith("text/css")


def test_frontend_fetches_nothing_from_outside(server):
  _, _, js = server.get(f"{PLUGIN}/index.js")
  _, _, css = server.get(f"{PLUGIN}/style.css")
  for text in (js.decode(), css.decode()):
    assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert "@import" not in text
  assert "innerHTML" not in js.decode()  # markup is never parsed from strings
  assert "insertAdjacentHTML" not in js.decode()


def test_runs_lists_every_run_with_its_verdict(server, world):
  runs = server.get_json(f"{PLUGIN}/runs")["runs"]
  assert {(r["run"], r["decision"]) for r in runs} == {
    (name, entry["decision"]) for name, entry in world["runs"].items()
  }
  by_run = {r["run"]: r for r in runs}
  assert by_run["keras_good/train"]["decision"] == "pass"
  assert by_run["keras_renamed/train"]["decision"] == "fail"
  assert by_run[HOSTILE]["decision"] == "fail"


def test_runs_name_the_checkpoint_and_config_each_used(server, world):
  by_run = {r["run"]: r for r in server.get_json(f"{PLUGIN}/runs")["runs"]}
  keras = by_run["keras_good/train"]["reports"][0]["header"]
  assert keras["checkpoint"] == world["keras"]["checkpoint"]
  assert keras["config"] == ""  # a Keras model: no pipeline config
  hostile = by_run[HOSTILE]["reports"][0]["header"]
  assert hostile["config"] == f"/configs/{dashboard_runs.HOSTILE_NAMES[0]}/pipeline.config"
  if world["odapi"]:
    good = by_run["odapi_good/train"]["reports"][0]["header"]
    assert good["config"] == world["odapi"]["good_config"]
    assert good["checkpoint"] == world["odapi"]["checkpoints"]["detection"]
    assert good["tier"] == "model"
    renamed = by_run["odapi_renamed/train"]["reports"][0]["header"]
    assert renamed["checkpoint"] == world["odapi"]["checkpoints"]["renamed"]


def test_report_keeps_findings_errors_first_and_the_rename_map(server, world):
  run = _renamed_run(world)
  data = server.get_json(f"{PLUGIN}/report?{_q(run=run)}")
  report = data["report"]
  expected = world["runs"][run]["report"]
  assert data["kind"] == metadata.PREFLIGHT and data["step"] == 0
  assert [f["code"] for f in report["findings"]] == [f["code"] for f in expected["findings"]]
  severities = [f["severity"] for f in report["findings"]]
  assert severities == sorted(severities, key=["error", "warning", "info"].index)
  assert report["verdict"] == expected["verdict"]
  assert report["fingerprint"] == expected["fingerprint"]
  assert set(report["restore"]) == {"schema", "mode", "counts", "coverage"}
  assert report["restore"]["coverage"] == expected["restore"]["coverage"]
  proposed = {
    (r["old"], r["new"]): f["code"]
    for f in expected["findings"]
    for r in f.get("data", {}).get("renames", [])
  }
  assert proposed  # one row per (old, new), with every finding that proposes it
  assert {(r["old"], r["new"]) for r in report["renames"]} == set(proposed)
  assert all(proposed[(r["old"], r["new"])] in r["codes"] for r in report["renames"])


def _fates(table: dict) -> dict[str, set[str]]:
  out: dict[str, set[str]] = {f: set() for f in table["fates"]}
  for path, fate in zip(table["path"], table["fate"]):
    out[table["fates"][fate]].add(path)
  return out


def test_variables_of_a_renamed_scope_run_are_missing(server, world):
  run = _renamed_run(world)
  table = server.get_json(f"{PLUGIN}/variables?{_q(run=run)}")
  restore = world["runs"][run]["report"]["restore"]
  fates = _fates(table)
  assert fates["missing"] == {v["path"] for v in restore["missing"]}
  assert fates["missing"]  # the renamed scope's variables
  assert fates["restored"] == {v["path"] for v in restore["restored"]}
  assert table["counts"] == {
    "restored": restore["counts"]["restored"],
    "missing": restore["counts"]["missing"],
    "shape_mismatch": restore["counts"]["shape_mismatches"],
    "dtype_mismatch": restore["counts"]["dtype_mismatches"],
    "unused": restore["counts"]["unused"],
    "not_requested": restore["counts"]["not_requested"],
  }
  if world["odapi"]:  # each missing variable's value is in the checkpoint, renamed
    renamed = {
      p.replace("model/CustomExtractor/", "model/_feature_extractor/", 1)
      for p in fates["unused"]
      if p.startswith("model/CustomExtractor/")
    }
    assert renamed == fates["missing"]
  else:
    assert all("/encoder/" in p for p in fates["missing"])


def test_variables_give_shapes_params_and_both_shapes_of_a_mismatch(server, world):
  table = server.get_json(f"{PLUGIN}/variables?{_q(run=HOSTILE)}")
  rows = {(table["path"][i], table["fates"][table["fate"][i]]): i for i in range(table["rows"])}
  restore = world["runs"][HOSTILE]["report"]["restore"]
  mismatch = restore["shape_mismatches"][0]
  i = rows[(mismatch["path"], "shape_mismatch")]
  assert (table["shape"][i], table["checkpoint"][i]) == ("(3, 3, 32, 32)", "(3, 3, 16, 32)")
  assert table["params"][i] == 3 * 3 * 32 * 32
  bias = next(b for b in restore["restored"] if b["path"].endswith("/bias"))
  j = rows[(bias["path"], "restored")]
  assert (table["shape"][j], table["params"][j], table["dtypes"][table["dtype"][j]]) == (
    "(32,)",
    32,
    "float32",
  )
  for name in dashboard_runs.HOSTILE_NAMES:
    assert (f"{dashboard_runs.HOSTILE_SCOPE}/{name}", "missing") in rows
    assert (f"model/{name}", "unused") in rows


def test_static_reports_have_no_variable_list(server, world):
  if not world["odapi"]:
    pytest.skip("od-guard check needs the OD API's config protos (odapi environment)")
  assert world["odapi"]["static_tf_imported"] is False  # the CLI's TF-free path
  data = server.get_json(f"{PLUGIN}/report?{_q(run='odapi_static')}")
  assert data["report"]["tier"] == "static"
  table = server.get_json(f"{PLUGIN}/variables?{_q(run='odapi_static')}")
  assert (table["has_restore"], table["rows"]) == (False, 0)


def test_a_checkpoint_verification_is_a_run_with_its_own_verdict(server, world):
  run = dashboard_runs.VERIFY_RUN
  by_run = {r["run"]: r for r in server.get_json(f"{PLUGIN}/runs")["runs"]}
  (entry,) = by_run[run]["reports"]
  assert (entry["kind"], entry["step"], by_run[run]["decision"]) == ("verification", 1, "pass")
  assert entry["header"]["checkpoint"] == world["keras"]["checkpoint"]
  assert (entry["header"]["damaged"], entry["header"]["unhealthy"]) == (0, 0)
  data = server.get_json(f"{PLUGIN}/report?{_q(run=run)}")
  assert data["report"] == world["runs"][run]["report"]
  status, _, body = server.get(f"{PLUGIN}/variables?{_q(run=run)}")
  assert status == 404 and b"has no od_guard preflight data" in body


def test_naming_checks_of_an_od_api_save(server, world):
  if not world["odapi"]:
    pytest.skip("the OD API drop-in runs in the odapi environment")
  timeline = server.get_json(f"{PLUGIN}/naming?{_q(run='odapi_good/train')}")
  assert timeline["rules"] == ["forbidden"]
  steps = [s["step"] for s in timeline["saves"]]
  assert steps
  detail = server.get_json(f"{PLUGIN}/naming?{_q(run='odapi_good/train', step=steps[-1])}")
  assert detail["total"] == timeline["saves"][-1]["violations"] > 0
  assert {v["rule"] for v in detail["violations"]} == {"forbidden"}
  assert all(v["path"].startswith("model/_box_predictor/") for v in detail["violations"])
  assert os.path.basename(detail["checkpoint"]).startswith("ckpt-")


def test_naming_checks_of_the_od_apis_saves_at_their_steps(server, world):
  if not world["odapi"]:
    pytest.skip("the OD API drop-in runs in the odapi environment")
  timeline = server.get_json(f"{PLUGIN}/naming?{_q(run='odapi_good/train')}")
  steps = [s["step"] for s in timeline["saves"]]
  assert len(steps) >= 2 and steps == sorted(set(steps))  # 2 training steps, a save each


def test_every_naming_record_is_kept_beyond_tensorboards_default_sampling(server):
  timeline = server.get_json(f"{PLUGIN}/naming?{_q(run=HOSTILE)}")
  assert [s["step"] for s in timeline["saves"]] == list(dashboard_runs.NAMING_STEPS)
  assert timeline["rules"] == ["charset", "forbidden"]
  assert [s["by_rule"] for s in timeline["saves"][:3]] == [
    {"forbidden": 1},
    {"forbidden": 2, "charset": 1},
    {"forbidden": 3},
  ]
  detail = server.get_json(f"{PLUGIN}/naming?{_q(run=HOSTILE, step=200)}")
  assert [v["path"] for v in detail["violations"]] == [
    f"model/{dashboard_runs.HOSTILE_NAMES[0]}/v0",
    f"model/{dashboard_runs.HOSTILE_NAMES[1]}/v1",
    f"model/{dashboard_runs.HOSTILE_NAMES[2]}/v2",
  ]


def test_compare_shows_what_changed_between_two_runs(server, world):
  good, renamed = _good_run(world), _renamed_run(world)
  diff = server.get_json(f"{PLUGIN}/compare?{_q(run_a=good, run_b=renamed)}")
  assert (diff["a"]["run"], diff["b"]["run"]) == (good, renamed)
  assert (diff["verdict"]["a"], diff["verdict"]["b"]) == ("pass", "fail")
  report_b = world["runs"][renamed]["report"]
  codes_a = {f["code"] for f in world["runs"][good]["report"]["findings"]}
  assert {f["code"] for f in diff["findings"]["added"]} == {
    f["code"] for f in report_b["findings"]
  } - codes_a
  transitions = {(t["from"], t["to"]): t["count"] for t in diff["fates"]["transitions"]}
  missing = report_b["restore"]["counts"]["missing"]
  if world["odapi"]:  # same model, same paths: every renamed variable went from restored
    assert transitions[("restored", "missing")] == missing
  else:  # the Keras model itself was renamed: its paths are new
    assert transitions[("absent", "missing")] == missing
  assert diff["fates"]["changed_total"] == sum(transitions.values())
  assert diff["fates"]["changed"][0]["a"] != diff["fates"]["changed"][0]["b"]


def test_compare_a_run_with_itself_changes_nothing(server, world):
  run = _renamed_run(world)
  diff = server.get_json(f"{PLUGIN}/compare?{_q(run_a=run, run_b=run)}")
  assert diff["fates"]["changed_total"] == 0 and diff["fates"]["transitions"] == []
  assert diff["findings"]["added"] == diff["findings"]["removed"] == []


@pytest.mark.parametrize(
  "query,status,message",
  [
    ("runs_missing", 400, "Missing query parameter 'run'"),
    (_q(run="../../../../etc/passwd"), 404, "No od_guard data in run"),
    (_q(run="keras_good"), 404, "No od_guard data in run"),
    (_q(run="keras_good/train", tag="od_guard/report"), 404, "no od_guard preflight"),
    (_q(run="keras_good/train", step="0; DROP"), 400, "must be an integer step"),
    (_q(run="keras_good/train", step="7"), 404, "has no step 7"),
    (_q(run="x" * 5000), 400, "is not a run or tag name"),
    (_q(run="keras_good/train\x00"), 400, "is not a run or tag name"),
  ],
)
def test_routes_take_only_runs_tags_and_steps_that_exist(server, query, status, message):
  path = f"{PLUGIN}/variables" + ("" if query == "runs_missing" else f"?{query}")
  got, headers, body = server.get(path)
  assert (got, message in body.decode()) == (status, True), body[:300]
  assert headers["Content-Type"].startswith("text/plain")  # never rendered as HTML


def test_hostile_names_travel_as_json_data(server):
  status, headers, body = server.get(f"{PLUGIN}/runs")
  assert status == 200 and headers["Content-Type"] == "application/json"
  runs = json.loads(body)["runs"]
  assert HOSTILE in {r["run"] for r in runs}
  table = server.get_json(f"{PLUGIN}/variables?{_q(run=HOSTILE)}")
  scope = dashboard_runs.HOSTILE_SCOPE
  assert {f"{scope}/{name}" for name in dashboard_runs.HOSTILE_NAMES} <= set(table["path"])


def test_tf_free_writer_writes_what_tf_summary_writes(tmp_path, world, tf):
  """The same report through tf.summary (TF imported here) and through the
  TF-free writer (the hostile run, written in a fresh interpreter)."""
  assert world["tf_free"] is True  # the fresh interpreter never imported TensorFlow
  from tensorboard.backend.event_processing import event_accumulator

  from od_guard.report import record
  from od_guard.report import tensorboard

  report = dashboard_runs.synthetic_report(20)
  assert isinstance(report, record.Report)
  tensorboard.write(report, str(tmp_path / "tf"), step=3)

  def read(run_dir):
    acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    return acc

  acc = read(tmp_path / "tf")
  tag = metadata.TAGS[metadata.PREFLIGHT]
  (event,) = acc.Tensors(tag)
  header, body = event.tensor_proto.string_val
  assert json.loads(body) == json.loads(json.dumps(report.to_dict()))
  assert json.loads(header)["decision"] == report.verdict.decision
  meta = acc.SummaryMetadata(tag)
  assert meta.plugin_data.plugin_name == "od_guard"
  assert metadata.parse_plugin_content(meta.plugin_data.content) == metadata.PREFLIGHT
  hostile = read(os.path.join(world["logdir"], HOSTILE))
  (free_event,) = hostile.Tensors(tag)
  assert hostile.SummaryMetadata(tag).data_class == meta.data_class
  assert free_event.tensor_proto.dtype == event.tensor_proto.dtype
  assert len(free_event.tensor_proto.string_val) == 2
  assert {"od_guard/verdict", "od_guard/report", tag} <= set(hostile.Tags()["tensors"])


def test_the_python_multiplexer_serves_what_the_data_server_serves(server, world):
  with dashboard_runs.TensorBoardServer(world["logdir"], load_fast="false") as slow:
    slow.wait_for_runs(set(world["runs"]))
    for route in (
      "runs",
      f"variables?{_q(run=_renamed_run(world))}",
      f"naming?{_q(run=HOSTILE)}",
    ):
      assert slow.get_json(f"{PLUGIN}/{route}") == server.get_json(f"{PLUGIN}/{route}"), route


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
