"""`python -m od_guard.odapi_compat MODULE [FLAGS...]`: runs a stock OD API module
with tf-slim's moved functions aliased in-process (see `od_guard.odapi.compat`)."""

from od_guard.odapi.compat import apply
from od_guard.odapi.compat import main

__all__ = ["apply", "main"]

if __name__ == "__main__":
  main()
