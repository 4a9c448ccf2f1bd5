"""TF2 checkpoint key syntax: object paths, attributes and their escaping.

A TF2 object-based checkpoint keys each saved value by the path of local names
from the root object to the object that owns it, then the attribute:
``model/_box..predictor/kernel/.ATTRIBUTES/VARIABLE_VALUE`` is the
``VARIABLE_VALUE`` of the object reached by ``model``, ``_box.predictor``,
``kernel``. Path components are escaped ('.' -> '..', '/' -> '.S'), so a key
splits on '/' unambiguously. An optimizer slot nests under the key of the
variable it belongs to: ``<variable path>/.OPTIMIZER_SLOT/<optimizer path>/
<slot name>/.ATTRIBUTES/VARIABLE_VALUE``.
"""

from __future__ import annotations

import re

# The component between an object path and its attribute.
ATTRIBUTES_MARK = ".ATTRIBUTES"
# The component between a variable's path and the path of one of its slots.
OPTIMIZER_SLOT_MARK = ".OPTIMIZER_SLOT"
# The attribute a variable's value is saved under.
VARIABLE_VALUE = "VARIABLE_VALUE"

ATTRIBUTES_INFIX = "/" + ATTRIBUTES_MARK + "/"
OPTIMIZER_SLOT_INFIX = "/" + OPTIMIZER_SLOT_MARK + "/"
VARIABLE_VALUE_SUFFIX = ATTRIBUTES_INFIX + VARIABLE_VALUE

_ESCAPED = re.compile(r"\.(.)")


def escape(component: str) -> str:
  """TF's escaping of an object-path component ('.' -> '..', '/' -> '.S')."""
  return component.replace(".", "..").replace("/", ".S")


def unescape(component: str) -> str:
  """Undoes TF's escaping of an object-path component ('..' -> '.', '.S' -> '/')."""
  return _ESCAPED.sub(lambda m: "/" if m.group(1) == "S" else m.group(1), component)


def split_key(key: str) -> tuple[tuple[str, ...], str]:
  """Splits a TF2 checkpoint key into its decoded object path and attribute.

  Args:
    key: a checkpoint key.

  Returns:
    (path components, attribute): for
    ``model/_box..predictor/kernel/.ATTRIBUTES/VARIABLE_VALUE``,
    (('model', '_box.predictor', 'kernel'), 'VARIABLE_VALUE'). A key without
    an attribute (a TF1 name) gives its decoded components and "".
  """
  head, sep, attribute = key.rpartition(ATTRIBUTES_INFIX)
  if not sep:
    head, attribute = key, ""
  if "." not in head:  # nothing escaped: the common case
    return tuple(head.split("/")), attribute
  return tuple(unescape(c) for c in head.split("/")), attribute


def checkpoint_key(path: str) -> str:
  """The checkpoint key TF writes for the value of the variable at `path`.

  Args:
    path: an object path, '/'-joined decoded components (which hold no '/').

  Returns:
    The key: path ``model/b.c`` gives ``model/b..c/.ATTRIBUTES/VARIABLE_VALUE``.
  """
  return "/".join(escape(c) for c in path.split("/")) + VARIABLE_VALUE_SUFFIX
