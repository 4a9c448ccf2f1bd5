"""od_guard: no training run starts on the wrong weights.

The public API grows issue by issue; today it reads checkpoints:

    >>> inv = od_guard.read_inventory("path/to/ckpt-0")
"""

__version__ = "0.1.0"

from od_guard.errors import OdGuardError  # noqa: E402
from od_guard.inventory import Inventory, read_inventory  # noqa: E402

__all__ = ["__version__", "OdGuardError", "Inventory", "read_inventory"]
