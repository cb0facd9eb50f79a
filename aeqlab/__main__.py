"""``python -m aeqlab``: the command line."""

from aeqlab.cli import main

main()
