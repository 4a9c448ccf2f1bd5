"""Writes tests/data/odapi_protos.json: what the OD API's real protoc-3 *_pb2
modules expose under protobuf 3.20 (the odapi environment), and how the zoo
configs parse with them (tests/data/zoo_configs, and ../shared/realworld/
zoo_configs when present). tests/compat_test.py compares the modules od_guard's
compat layer builds from their descriptors (protobuf 7, the modern environment)
with it. A committed dump rather than a subprocess in the odapi environment:
the modern environment's tests then run on a machine (or CI job) that has only
that environment.

Usage (odapi environment, from the repository root):
  .venv/odapi/bin/python tests/data/make_odapi_protos.py [--check]
"""

from __future__ import annotations

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(REPO))

from support import odapi_protos  # noqa: E402  (after the path set-up)

from od_guard.odapi import config_schema  # noqa: E402


def zoo_configs() -> dict[str, pathlib.Path]:
  """Key (as stored) -> path of every zoo config present."""
  found = {f"tests/data/zoo_configs/{p.name}": p for p in (HERE / "zoo_configs").glob("*.config")}
  shared = REPO.parent / "shared" / "realworld" / "zoo_configs"
  found.update({f"realworld/zoo_configs/{p.name}": p for p in shared.glob("*.config")})
  return dict(sorted(found.items()))


def build() -> dict:
  import google.protobuf

  directory = config_schema.protos_dir()
  if directory is None or not config_schema.protoc3_modules_load(directory):
    sys.exit("run this in the odapi environment (the OD API's own protos, protobuf 3.20)")
  return {
    "protobuf": google.protobuf.__version__,
    "modules": {
      name: odapi_protos.dump_module(name) for name in odapi_protos.module_names(directory)
    },
    "zoo_configs": {key: odapi_protos.config_digests(p) for key, p in zoo_configs().items()},
  }


def main(argv: list[str]) -> int:
  text = json.dumps(build(), indent=1, sort_keys=True) + "\n"
  if "--check" in argv:
    same = odapi_protos.DUMP.read_text(encoding="utf-8") == text
    print(f"{odapi_protos.DUMP}: {'up to date' if same else 'differs'}")
    return 0 if same else 1
  odapi_protos.DUMP.write_text(text, encoding="utf-8")
  print(f"wrote {odapi_protos.DUMP}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
