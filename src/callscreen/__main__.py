"""``python -m callscreen``: the same as the ``callscreen`` command."""

from callscreen.cli import main

main()
