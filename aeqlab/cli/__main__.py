"""``python -m aeqlab.cli``: the command line."""

from aeqlab.cli import main

main()
