"""Run `python -m rotator` as the `rotate` command."""

from rotator.cli import main

main()
