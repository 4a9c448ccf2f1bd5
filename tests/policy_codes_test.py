"""Policy.ignore / Policy.select: the codes given, checked against the registry."""

from __future__ import annotations

import pytest

from od_guard import errors
from od_guard.restore import policy as policy_lib

pytestmark = pytest.mark.plain


@pytest.mark.parametrize(
  ("value", "codes"),
  [
    ("checkpoint_type_mismatch", {"checkpoint_type_mismatch"}),
    (" checkpoint_type_mismatch , , input_path_missing,", {"checkpoint_type_mismatch", "input_path_missing"}),
    (["input_path_missing", "label_map_invalid,tf1_config_field"], {"input_path_missing", "label_map_invalid", "tf1_config_field"}),
    ([], set()),
    ("", set()),
  ],
)  # fmt: skip
def test_codes_round_trip(value, codes):
  assert policy_lib.parse_codes(value, source="--ignore") == codes
  policy = policy_lib.preset("default").replace(ignore=value, select=value)
  assert policy.ignore == policy.select == codes
  d = policy.to_dict()
  assert d.get("ignore", []) == d.get("select", []) == sorted(codes)


def test_a_policy_without_them_reports_as_before():
  assert "ignore" not in policy_lib.preset("default").to_dict()
  assert "select" not in policy_lib.preset("strict").to_dict()


@pytest.mark.parametrize(
  ("value", "message"),
  [
    (
      "checkpoint_type_mismatc",
      "Unknown finding code 'checkpoint_type_mismatc' in --ignore. Did you mean "
      "'checkpoint_type_mismatch'?",
    ),
    ("input_paths_missing", "Unknown finding code 'input_paths_missing' in --ignore. Did you mean 'input_path_missing'?"),
    ("zzzz", "Unknown finding code 'zzzz' in --ignore."),
  ],
)  # fmt: skip
def test_an_unknown_code_names_the_closest(value, message):
  with pytest.raises(errors.UsageError) as e:
    policy_lib.parse_codes(value, source="--ignore")
  assert e.value.what == message
  assert e.value.received == f"--ignore {value}"


def test_replace_checks_the_codes():
  with pytest.raises(errors.UsageError, match="in Policy.select. Did you mean 'shape_mismatch'"):
    policy_lib.preset("default").replace(select={"shape_mismatches"})


@pytest.mark.parametrize("value", [5, [1, 2], {"a": 1}, None])
def test_not_strings_is_a_usage_error(value):
  with pytest.raises(errors.UsageError, match="must be finding codes"):
    policy_lib.parse_codes(value, source="ignore")
