"""`python -m od_guard` runs the `od-guard` command."""

from od_guard import cli

if __name__ == "__main__":
  cli.run()
