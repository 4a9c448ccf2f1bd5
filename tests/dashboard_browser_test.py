"""The od_guard dashboard in a real headless Chromium, over a real TensorBoard.

Each test loads the plugin's page (what TensorBoard puts in the dashboard's
iframe), drives it as a user would, checks the DOM, and saves a screenshot of
the state under its output directory. Skips where no Chromium is installed
(Debian: `apt-get install chromium`).
"""

from __future__ import annotations

import json
import re
import time

import pytest
from support import dashboard_runs
from support import headless_chromium

pytestmark = pytest.mark.skipif(
  headless_chromium.find_chromium() is None,
  reason="no Chromium: install Debian's 'chromium' package (.ci/run does) to run browser tests",
)

READY = "document.body.dataset.state === 'ready'"


# The event files and the TensorBoard server are the route tests' own.
from dashboard_test import server  # noqa: E402, F401
from dashboard_test import world  # noqa: E402, F401


@pytest.fixture(scope="module")
def chromium():
  with headless_chromium.Chromium(width=1400, height=900) as browser:
    yield browser


@pytest.fixture
def page(server, chromium):
  """The dashboard, freshly loaded; the browser's records start empty."""
  chromium.dialogs.clear()
  chromium.exceptions.clear()
  chromium.requests.clear()
  chromium.navigate(f"{server.url}/data/plugin_entry.html?name=od_guard")
  chromium.wait_for(f"{READY} && document.querySelectorAll('[data-role=run]').length > 0")
  yield chromium
  assert chromium.exceptions == []
  assert chromium.dialogs == []  # no alert() ever ran
  outside = [u for u in chromium.requests if not u.startswith(server.url + "/")]
  assert outside == []  # nothing fetched from anywhere else


def _renamed_run(world) -> str:
  return "odapi_renamed/train" if world["odapi"] else "keras_renamed/train"


def _good_run(world) -> str:
  return "odapi_good/train" if world["odapi"] else "keras_good/train"


def _select(page, run: str) -> None:
  index = page.evaluate(
    "[...document.querySelectorAll('[data-role=run-name]')].findIndex("
    f"(e) => e.textContent === {json.dumps(run)})"
  )
  assert index >= 0, run
  page.evaluate(f"document.querySelectorAll('[data-role=run]')[{index}].click()")
  page.wait_for(
    f"{READY} && document.querySelector('[data-role=run].selected [data-role=run-name]')"
    f".textContent === {json.dumps(run)}"
  )


def _tab(page, view: str, ready_role: str) -> None:
  page.evaluate(f"document.querySelector('[data-role=tab][data-view={view}]').click()")
  page.wait_for(f"{READY} && !!document.querySelector('[data-role={ready_role}]')")


def _only_fates(page, fates: set[str]) -> None:
  page.evaluate(
    "for (const c of document.querySelectorAll('[data-role=fate-chip]')) {"
    f"  if (c.classList.contains('on') !== {json.dumps(sorted(fates))}.includes(c.dataset.fate))"
    "    c.click(); }"
  )


def _filter(page, text: str, *, regex: bool = False) -> None:
  page.evaluate(
    "(() => { const r = document.querySelector('[data-role=var-regex]');"
    f" if (r.checked !== {json.dumps(regex)}) r.click();"
    " const i = document.querySelector('[data-role=var-filter]');"
    f" i.value = {json.dumps(text)}; i.dispatchEvent(new Event('input')); }})()"
  )


def _matched(page) -> int:
  return int(page.evaluate("document.querySelector('[data-role=var-status]').dataset.matched"))


def _rows(page) -> list[dict]:
  """The variable rows rendered in the table's window."""
  return page.evaluate(
    "[...document.querySelectorAll('[data-role=var-row]')].map((r) => ({"
    "fate: r.dataset.fate, title: r.title,"
    " name: r.querySelector('[data-role=var-name]').textContent}))"
  )


def _show_table(page) -> None:
  page.evaluate("document.querySelector('[data-role=variables]').scrollIntoView()")


def test_dashboard_loads_with_a_badge_per_run(page, world, tmp_path):
  runs = page.evaluate(
    "[...document.querySelectorAll('[data-role=run]')].map((r) => ["
    "r.querySelector('[data-role=run-name]').textContent,"
    " r.querySelector('[data-role=badge]').textContent])"
  )
  assert {tuple(r) for r in runs} == {
    (name, entry["decision"].upper()) for name, entry in world["runs"].items()
  }
  page.wait_for("document.body.dataset.tableRendered === '1'")
  page.screenshot(str(tmp_path / "loaded.png"))


def test_the_dashboard_opens_in_tensorboards_own_tab(server, chromium, world, tmp_path):
  chromium.requests.clear()
  chromium.navigate(f"{server.url}/#od_guard")
  chromium.wait_for("!!document.querySelector('iframe')", timeout=60)
  deadline = time.time() + 60
  while True:  # the iframe's document replaces about:blank once the plugin loads
    try:
      frame = chromium.frame_context("plugin_entry.html?name=od_guard")
      if chromium.evaluate("document.body.dataset.tableRendered === '1'", context=frame):
        break
    except headless_chromium.BrowserError:
      pass
    assert time.time() < deadline, "the od_guard tab did not render its table"
    time.sleep(0.2)
  runs = chromium.evaluate("document.querySelectorAll('[data-role=run]').length", context=frame)
  assert runs == len(world["runs"])
  assert [u for u in chromium.requests if not u.startswith(server.url + "/")] == []
  chromium.screenshot(str(tmp_path / "in_tensorboard.png"))


def test_the_badge_says_fail_for_a_failing_run(page, world, tmp_path):
  run = _renamed_run(world)
  _select(page, run)
  assert (
    page.evaluate(
      "document.querySelector('[data-role=run].selected [data-role=badge]').textContent"
    )
    == "FAIL"
  )
  assert (
    page.evaluate("document.querySelector('[data-role=verdict] [data-role=badge]').textContent")
    == "FAIL"
  )
  codes = page.evaluate(
    "[...document.querySelectorAll('[data-role=finding]')].map((f) => f.dataset.code)"
  )
  assert codes == [f["code"] for f in world["runs"][run]["report"]["findings"]]
  page.screenshot(str(tmp_path / "failing_run.png"))


def test_the_table_shows_the_missing_variables_of_a_renamed_scope_run(page, world, tmp_path):
  run = _renamed_run(world)
  _select(page, run)
  _only_fates(page, {"missing"})
  _show_table(page)
  missing = {v["path"] for v in world["runs"][run]["report"]["restore"]["missing"]}
  assert _matched(page) == len(missing)
  page.evaluate("document.querySelector('[data-role=expand-all]').click()")
  rows = _rows(page)
  assert rows and {r["fate"] for r in rows} == {"missing"}
  assert {r["title"].split("\n")[0] for r in rows} <= missing
  if world["odapi"]:
    assert all(r["title"].startswith("model/_feature_extractor/") for r in rows)
  page.screenshot(str(tmp_path / "missing_variables.png"))


def test_filtering_narrows_the_table(page, world, tmp_path):
  _select(page, _renamed_run(world))
  _show_table(page)
  everything = _matched(page)
  _filter(page, "bias")
  by_text = _matched(page)
  assert 0 < by_text < everything
  assert all("bias" in r["title"].lower() for r in _rows(page))
  page.screenshot(str(tmp_path / "filtered_text.png"))
  _filter(page, r"kernel$", regex=True)
  assert 0 < _matched(page) < everything
  assert all(re.search("kernel$", r["title"].split("\n")[0], re.I) for r in _rows(page))
  _filter(page, "(unclosed", regex=True)
  assert _matched(page) == 0
  assert page.evaluate(
    "document.querySelector('[data-role=var-filter]').classList.contains('invalid')"
  )
  page.screenshot(str(tmp_path / "filtered_bad_regex.png"))


def test_comparing_two_runs_shows_the_difference(page, world, tmp_path):
  good, renamed = _good_run(world), _renamed_run(world)
  _select(page, good)
  _tab(page, "compare", "compare-verdict")
  page.evaluate(
    "(() => { const s = document.querySelector('[data-role=compare-b]');"
    f" s.selectedIndex = [...s.options].findIndex((o) => o.textContent === {json.dumps(renamed)});"
    " s.dispatchEvent(new Event('change')); })()"
  )
  page.wait_for(
    f"{READY} && document.querySelector('[data-role=compare-b]').selectedOptions[0].textContent"
    f" === {json.dumps(renamed)}"
  )
  assert page.evaluate(
    "[...document.querySelectorAll('[data-role=compare-verdict] [data-role=badge]')]"
    ".map((b) => b.textContent)"
  ) == ["PASS", "FAIL"]
  added = page.evaluate(
    "[...document.querySelectorAll('[data-role=compare-finding][data-change=added]')]"
    ".map((r) => r.querySelector('.code-chip').textContent)"
  )
  codes_a = {f["code"] for f in world["runs"][good]["report"]["findings"]}
  codes_b = {f["code"] for f in world["runs"][renamed]["report"]["findings"]}
  assert set(added) == codes_b - codes_a
  assert "renamed_scopes" in added or not world["odapi"]
  transitions = page.evaluate(
    "[...document.querySelectorAll('[data-role=fate-transition]')]"
    ".map((t) => [t.dataset.from, t.dataset.to])"
  )
  assert ["restored" if world["odapi"] else "absent", "missing"] in transitions
  page.screenshot(str(tmp_path / "compare.png"))


def test_naming_violations_over_training_steps(page, tmp_path):
  run = dashboard_runs.HOSTILE_RUN
  _select(page, run)
  _tab(page, "naming", "naming-detail")
  steps = page.evaluate(
    "[...document.querySelectorAll('[data-role=naming-step]')].map((s) => s.textContent)"
  )
  assert steps == [str(s) for s in dashboard_runs.NAMING_STEPS]
  rules = page.evaluate(
    "[...document.querySelectorAll('[data-role=naming-rule] th')].map((s) => s.textContent)"
  )
  assert rules == ["charset", "forbidden"]
  page.screenshot(str(tmp_path / "naming.png"))


def test_a_hostile_variable_name_renders_as_text(page, tmp_path):
  _select(page, dashboard_runs.HOSTILE_RUN)
  _only_fates(page, {"missing", "unused"})
  _filter(page, "alert")
  _show_table(page)
  names = {r["name"] for r in _rows(page)}
  assert set(dashboard_runs.HOSTILE_NAMES) - {'"><script>alert(2)</script>'} <= names
  assert "script>" in names  # '"><script>alert(2)</script>' split at its '/'
  text = page.evaluate("document.body.innerText")
  assert dashboard_runs.HOSTILE_RUN in text  # the run name, as text
  assert "A finding whose text is markup: <img src=x onerror=alert(1)>" in text
  injected = page.evaluate(
    "({img: document.querySelectorAll('img').length,"
    " script: document.querySelectorAll('script').length,"
    " b: document.querySelectorAll('b').length,"
    " handlers: [...document.querySelectorAll('*')].filter((e) =>"
    " [...e.attributes].some((a) => a.name.startsWith('on'))).length})"
  )
  assert injected == {"img": 0, "script": 1, "b": 0, "handlers": 0}  # 1: TensorBoard's loader
  page.screenshot(str(tmp_path / "hostile.png"))


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
