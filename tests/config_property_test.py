"""Property: any mutation of a real pipeline.config either reads or raises a
typed od_guard error (exit 2), on every schema route this environment has;
never a raw exception, never a hang. Bounded for CI (a few seconds per route)."""

from __future__ import annotations

import time

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from od_guard import errors
from od_guard.odapi import config
from od_guard.odapi import config_schema

from conftest import ZOO_COPIES

pytestmark = pytest.mark.plain

CONFIGS = sorted(p.read_bytes() for p in ZOO_COPIES.glob("*.config"))
# Pieces of text-format syntax that mutations splice in.
TOKENS = [
  b"{",
  b"}",
  b"<",
  b">",
  b"[",
  b"]",
  b":",
  b",",
  b'"',
  b"'",
  b"\\",
  b"#",
  b"\n",
  b"[ext.x] { }",
  b"PATH_TO_BE_CONFIGURED",
  b"ssd { }",
  b"num_classes: -99999999999999999999",
  b"fine_tune_checkpoint_version: V9",
  b"use_bfloat16: maybe",
  b'"\\xff\\377"',
  b"model { " * 50,
  b"1e999",
  b"\xff\xfe",
  b"\x00",
]


def _routes() -> list[str]:
  out = []
  for route in (config_schema.GENERATED, config_schema.DESCRIPTORS, config_schema.NONE):
    try:
      config_schema.load(route)
    except errors.OdGuardError:
      continue
    out.append(route)
  return out


@st.composite
def mutated(draw) -> bytes:
  data = bytearray(draw(st.sampled_from(CONFIGS)))
  for _ in range(draw(st.integers(1, 4))):
    if not data:
      break
    at = draw(st.integers(0, len(data) - 1))
    action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
    if action == "flip":
      data[at] ^= 1 << draw(st.integers(0, 7))
    elif action == "insert":
      data[at:at] = draw(st.sampled_from(TOKENS))
    elif action == "delete":
      del data[at : at + draw(st.integers(1, 64))]
    elif action == "truncate":
      del data[at:]
    else:
      data[at:at] = draw(st.binary(max_size=16))
  return bytes(data)


@pytest.mark.parametrize("route", _routes())
def test_mutated_configs_read_or_raise_a_typed_error(tmp_path_factory, route):
  path = tmp_path_factory.mktemp("cfg") / "pipeline.config"
  slowest = [0.0]

  @settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
  )
  @given(mutated())
  def run(content: bytes):
    path.write_bytes(content)
    start = time.monotonic()
    try:
      parsed, text = config.parse_with_text(str(path), route=route)
      config.read(str(path), parsed, text=text)
    except errors.OdGuardError as e:
      assert e.exit_code == 2 and e.what
    slowest[0] = max(slowest[0], time.monotonic() - start)

  run()
  assert slowest[0] < 5
