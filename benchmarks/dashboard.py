"""Benchmark: the od_guard dashboard on a 50,000-variable report.

Writes a synthetic preflight report of 50,000 variables (od_guard's own records,
through the TF-free writer) into a fresh logdir, starts a real TensorBoard on
127.0.0.1 and measures:

* the plugin routes, with a first (cold: the record is read and parsed) and
  repeated (warm: cached) request each: seconds, bytes, gzip bytes;
* in a headless Chromium, the time from navigation start to the variable table
  rendered (the page's `od_guard:table-rendered` mark), on a freshly started
  TensorBoard (cold) and on reloads (warm, median).

Prints one JSON line. Target: the table rendered in < 2 s (cold).

Usage: python benchmarks/dashboard.py [--variables 50000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the test-only helpers: tests/support

from support import dashboard_runs  # noqa: E402
from support import headless_chromium  # noqa: E402

from od_guard.report import tensorboard  # noqa: E402

TARGET_MS = 2000.0
RUN = "big"
PLUGIN = "/data/plugin/od_guard"


def _route(server, path: str) -> dict:
  t = time.perf_counter()
  status, headers, body = server.get(path, gzip=True)
  seconds = time.perf_counter() - t
  if status != 200:
    raise SystemExit(f"{path}: HTTP {status}: {body[:300]!r}")
  import gzip

  raw = gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body
  return {"seconds": round(seconds, 4), "gzip_bytes": len(body), "bytes": len(raw)}


def _page_ms(browser, url: str) -> dict:
  browser.navigate(url)
  browser.wait_for("document.body.dataset.tableRendered === '1'", timeout=120)
  marks = browser.evaluate(
    "Object.fromEntries(performance.getEntriesByType('mark').map((m) => [m.name, m.startTime]))"
  )
  rows = browser.evaluate(
    "document.querySelectorAll('[data-role=var-row],[data-role=node-row]').length"
  )
  return {"table_ms": marks["od_guard:table-rendered"], "marks": marks, "rows_in_dom": rows}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variables", type=int, default=50_000)
  parser.add_argument("--rounds", type=int, default=5)
  args = parser.parse_args()
  work = pathlib.Path(tempfile.mkdtemp(prefix="od_guard_dashboard_bench_"))
  try:
    logdir = work / "logs"
    t = time.perf_counter()
    report = dashboard_runs.synthetic_report(args.variables, renamed_fraction=0.1)
    build_seconds = time.perf_counter() - t
    t = time.perf_counter()
    tensorboard.write(report, str(logdir / RUN), step=0)
    write_seconds = time.perf_counter() - t
    event_bytes = sum(p.stat().st_size for p in (logdir / RUN).iterdir())
    query = urllib.parse.urlencode({"run": RUN})

    # Routes: a first request on a fresh server, then repeated ones.
    routes: dict[str, dict] = {}
    with dashboard_runs.TensorBoardServer(str(logdir)) as server:
      server.wait_for_runs({RUN})
      for name, path in (
        ("runs", f"{PLUGIN}/runs"),
        ("report", f"{PLUGIN}/report?{query}"),
        ("variables", f"{PLUGIN}/variables?{query}"),
        ("compare", f"{PLUGIN}/compare?run_a={RUN}&run_b={RUN}"),
      ):
        cold = _route(server, path)
        warm = [_route(server, path)["seconds"] for _ in range(args.rounds)]
        routes[name] = {
          "cold_seconds": cold["seconds"],
          "warm_seconds": round(statistics.median(warm), 4),
          "bytes": cold["bytes"],
          "gzip_bytes": cold["gzip_bytes"],
        }

    # The page: a fresh server (cold), then reloads (warm).
    browser_result: dict = {"chromium": headless_chromium.find_chromium()}
    if browser_result["chromium"]:
      with dashboard_runs.TensorBoardServer(str(logdir)) as server:
        server.wait_for_runs({RUN})
        url = f"{server.url}/data/plugin_entry.html?name=od_guard"
        with headless_chromium.Chromium() as browser:
          cold = _page_ms(browser, url)
          warm = [_page_ms(browser, url) for _ in range(args.rounds)]
        browser_result.update(
          {
            "cold_table_ms": round(cold["table_ms"], 1),
            "warm_table_ms": round(statistics.median(w["table_ms"] for w in warm), 1),
            "cold_marks_ms": {k: round(v, 1) for k, v in cold["marks"].items()},
            "rows_in_dom": cold["rows_in_dom"],
          }
        )
    cold_ms = browser_result.get("cold_table_ms")
    warm_ms = browser_result.get("warm_table_ms")
    print(
      json.dumps(
        {
          "benchmark": "dashboard",
          "variables": args.variables,
          "rounds": args.rounds,
          "cpus": os.cpu_count(),
          "report_build_seconds": round(build_seconds, 3),
          "write_seconds": round(write_seconds, 3),
          "event_file_bytes": event_bytes,
          "routes": routes,
          "variables_gzip_ratio": round(
            routes["variables"]["gzip_bytes"] / routes["variables"]["bytes"], 4
          ),
          "browser": browser_result,
          "target_ms": TARGET_MS,
          "cold_over_target": round(cold_ms / TARGET_MS, 3) if cold_ms else None,
          "warm_over_target": round(warm_ms / TARGET_MS, 3) if warm_ms else None,
          "targets_met": bool(cold_ms and cold_ms < TARGET_MS),
        }
      )
    )
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
