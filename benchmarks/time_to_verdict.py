"""Benchmark: how long until a misconfigured fine-tune is told what is wrong.

For each misconfiguration, on the same tiny SSD MobileNet V2 set-up, alternating
in one run:
  stock   whole process: the OD API's own model_main_tf2 (run through
          `od_guard.odapi_compat`, which only aliases tf-slim's moved functions,
          without which stock fails in the input pipeline for an unrelated
          reason), until it exits with its error;
  static  whole process: `od-guard check --static`;
  full    whole process: `od-guard check` (TF + OD API import, model build, match).
Prints one JSON line: per scenario the wall times, the ratios static/stock and
full/stock, and the phases of the full check (read, static, import, build,
match, from its JSON report). Targets: static <= 1/100 of stock, full <= 1/3.

Usage: python benchmarks/time_to_verdict.py [--rounds 1]
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time

import harness

REPO = harness.REPO


def _timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
  t = time.perf_counter()
  r = subprocess.run(argv, capture_output=True, text=True, env=harness.ENV, timeout=1200)
  return time.perf_counter() - t, r


def _setup(root: pathlib.Path) -> dict[str, str]:
  """Writes the scenarios' configs; returns scenario -> config path."""
  sys.path.insert(0, str(REPO))
  from od_guard.testing import tiny_odapi

  mobilenet = REPO / "examples" / "tiny_ssd_mobilenet_v2" / "pipeline.config"
  resnet = REPO / "examples" / "tiny_ssd_resnet50_fpn" / "pipeline.config"
  world = tiny_odapi.write_world(str(root), str(mobilenet))
  ckpt = world.checkpoints

  def write(name, source, checkpoint, checkpoint_type="detection"):
    return world.localize(str(source), str(root / f"{name}.config"), checkpoint, checkpoint_type)

  return {
    "wrong_backbone": write("wrong_backbone", resnet, ckpt["detection"]),
    "renamed_scopes": write("renamed_scopes", mobilenet, ckpt["renamed"]),
    "tf1_checkpoint": write("tf1_checkpoint", mobilenet, ckpt["tf1"]),
    "classification_type_on_detection_ckpt": write(
      "wrong_type", mobilenet, ckpt["detection"], "classification"
    ),
    "weightless_checkpoint": write("weightless", mobilenet, ckpt["weightless"]),
  }


def main() -> None:
  args = harness.parser(__doc__, rounds=1).parse_args()
  with harness.workdir("od_guard_ttv_") as root:
    harness.progress("setting up the tiny model, checkpoints and configs ...")
    scenarios = _setup(root)
    results = {}
    for name, config in scenarios.items():
      times = {"stock": [], "static": [], "full": []}
      phases = {}
      for r in range(args.rounds):
        model_dir = root / f"train_{name}_{r}"
        secs, stock = _timed(
          [
            sys.executable,
            "-m",
            "od_guard.odapi_compat",
            "object_detection.model_main_tf2",
            f"--pipeline_config_path={config}",
            f"--model_dir={model_dir}",
          ]
        )
        if stock.returncode == 0:
          raise SystemExit(f"stock model_main_tf2 trained on {name}: not a misconfiguration")
        times["stock"].append(secs)
        check = [sys.executable, "-m", "od_guard", "check", "--json", "--pipeline_config_path"]
        secs, static = _timed([*check, config, "--static"])
        times["static"].append(secs)
        secs, full = _timed([*check, config])
        times["full"].append(secs)
        for out in (static, full):
          if out.returncode != 1:
            raise SystemExit(f"od-guard check did not fail on {name}: {out.stderr[-500:]}")
        phases = json.loads(full.stdout)["timings"]
        lines = [l for l in stock.stderr.strip().splitlines() if "Error" in l] or ["?"]
        stock_error = lines[-1][:160]
        harness.progress(
          f"{name}: stock {times['stock'][-1]:.1f}s ({stock_error}); static "
          f"{times['static'][-1]:.2f}s; full {times['full'][-1]:.1f}s"
        )
      med = harness.medians(times)
      results[name] = {
        "stock_seconds": round(med["stock"], 2),
        "static_seconds": round(med["static"], 3),
        "full_seconds": round(med["full"], 2),
        "static_over_stock": round(med["static"] / med["stock"], 4),
        "full_over_stock": round(med["full"] / med["stock"], 3),
        "full_phases_seconds": phases,
        "stock_error": stock_error,
        "verdict_codes": [
          f["code"] for f in json.loads(static.stdout)["findings"] if f["severity"] == "error"
        ],
      }
  harness.emit(
    "time_to_verdict",
    {
      "rounds": args.rounds,
      "scenarios": results,
      "max_static_over_stock": max(r["static_over_stock"] for r in results.values()),
      "max_full_over_stock": max(r["full_over_stock"] for r in results.values()),
      "targets_met": all(
        r["static_over_stock"] <= 0.01 and r["full_over_stock"] <= 1 / 3 for r in results.values()
      ),
    },
  )


if __name__ == "__main__":
  main()
