"""``python -m aeqlab``: the command line."""

from aeqlab.entry import main

main()
