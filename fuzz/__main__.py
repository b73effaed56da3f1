"""``python -m fuzz``: the same as the ``zetcd-fuzz`` command."""

from fuzz.cli import main

main()
