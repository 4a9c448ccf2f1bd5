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

Also, for the drop-in (`python -m od_guard.model_main_tf2`):
  dropin_tf1   its wall time on the TF1-checkpoint case (it stops in the
               TF-free static tier) against stock's; target <= 1/50;
  step_one     on a passing fine-tune (--num_train_steps=1), the seconds from
               process start to the start of training step one (the first call
               of model_lib_v2.eager_train_step, recorded by a tiny wrapper that
               imports TF and the OD API first, for stock and drop-in alike),
               stock against the drop-in; the preflight's overhead
               (drop-in / stock - 1) target <= 10%.

Usage: python benchmarks/time_to_verdict.py [--rounds 1]
"""

from __future__ import annotations

import json
import pathlib
import statistics
import subprocess
import sys
import time

import harness

REPO = harness.REPO


def _timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
  t = time.perf_counter()
  r = subprocess.run(argv, capture_output=True, text=True, env=harness.ENV, timeout=1200)
  return time.perf_counter() - t, r


# Runs MODULE with ARGS as __main__, recording in OUT the wall clock (time.time)
# at which training step one starts: the first call of eager_train_step (traced
# into the first _dist_train_step call), then exits.
_STEP_ONE = """
import os, runpy, sys, time
out, module = sys.argv[1], sys.argv[2]
sys.argv = [module, *sys.argv[3:]]
from od_guard.odapi import compat
compat.apply()
from object_detection import model_lib_v2
step = model_lib_v2.eager_train_step
def eager_train_step(*args, **kwargs):
  if not eager_train_step.seen:
    eager_train_step.seen = True
    with open(out, "w") as f:
      f.write(repr(time.time()))
    os._exit(0)  # step one started: what is measured
  return step(*args, **kwargs)
eager_train_step.seen = False
model_lib_v2.eager_train_step = eager_train_step
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def _step_one(root: pathlib.Path, name: str, module: list[str], config: str) -> float:
  """Seconds from launching `module` on `config` to the start of step one."""
  out = root / f"step_one_{name}.txt"
  model_dir = root / f"train_step_one_{name}"
  start = time.time()
  r = subprocess.run(
    [
      sys.executable,
      "-c",
      _STEP_ONE,
      str(out),
      *module,
      f"--pipeline_config_path={config}",
      f"--model_dir={model_dir}",
      "--num_train_steps=1",
    ],
    capture_output=True,
    text=True,
    env=harness.ENV,
    timeout=1200,
  )
  if r.returncode != 0 or not out.exists():
    raise SystemExit(f"{name} did not reach step one ({r.returncode}): {r.stderr[-800:]}")
  return float(out.read_text()) - start


DROP_IN = "od_guard.model_main_tf2"


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
    "good": write("good", mobilenet, ckpt["detection"]),
  }


def main() -> None:
  args = harness.parser(__doc__, rounds=1).parse_args()
  with harness.workdir("od_guard_ttv_") as root:
    harness.progress("setting up the tiny model, checkpoints and configs ...")
    scenarios = _setup(root)
    good = scenarios.pop("good")
    results = {}
    dropin_tf1 = []
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
        if name == "tf1_checkpoint":
          secs, dropin = _timed(
            [
              sys.executable,
              "-m",
              DROP_IN,
              f"--pipeline_config_path={config}",
              f"--model_dir={root / f'train_dropin_{r}'}",
            ]
          )
          if dropin.returncode != 1:
            raise SystemExit(f"the drop-in did not fail on {name}: {dropin.stderr[-500:]}")
          dropin_tf1.append(secs)
          harness.progress(f"{name}: drop-in {secs:.2f}s")
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
    step_one = {"stock": [], "dropin": []}
    for r in range(args.rounds):
      step_one["stock"].append(
        _step_one(
          root, f"stock_{r}", ["od_guard.odapi_compat", "object_detection.model_main_tf2"], good
        )
      )
      step_one["dropin"].append(_step_one(root, f"dropin_{r}", [DROP_IN], good))
      harness.progress(
        f"step one: stock {step_one['stock'][-1]:.1f}s; drop-in {step_one['dropin'][-1]:.1f}s"
      )
  stock_tf1 = results["tf1_checkpoint"]["stock_seconds"]
  dropin_tf1_s = statistics.median(dropin_tf1)
  med_one = harness.medians(step_one)
  overhead = med_one["dropin"] / med_one["stock"] - 1
  dropin = {
    "tf1_checkpoint_dropin_seconds": round(dropin_tf1_s, 3),
    "tf1_checkpoint_stock_seconds": stock_tf1,
    "tf1_checkpoint_dropin_over_stock": round(dropin_tf1_s / stock_tf1, 4),
    "step_one_stock_seconds": round(med_one["stock"], 2),
    "step_one_dropin_seconds": round(med_one["dropin"], 2),
    "step_one_dropin_over_stock": round(med_one["dropin"] / med_one["stock"], 3),
    "preflight_overhead": round(overhead, 3),
  }
  harness.emit(
    "time_to_verdict",
    {
      "rounds": args.rounds,
      "scenarios": results,
      "max_static_over_stock": max(r["static_over_stock"] for r in results.values()),
      "max_full_over_stock": max(r["full_over_stock"] for r in results.values()),
      "dropin": dropin,
      "targets_met": all(
        r["static_over_stock"] <= 0.01 and r["full_over_stock"] <= 1 / 3 for r in results.values()
      )
      and dropin["tf1_checkpoint_dropin_over_stock"] <= 1 / 50
      and overhead <= 0.10,
    },
  )


if __name__ == "__main__":
  main()
