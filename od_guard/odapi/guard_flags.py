"""The `--guard_*` flags the OD API drop-ins share (absl), defined once."""

from __future__ import annotations

from absl import flags

POLICIES = ("strict", "default", "lenient")


def define_policy(fv: flags.FlagValues) -> None:
  """--guard_policy: the preset that turns the preflight's findings into a verdict."""
  flags.DEFINE_enum(
    "guard_policy",
    "default",
    list(POLICIES),
    "od_guard policy that turns the preflight's findings into a verdict.",
    flag_values=fv,
  )
