"""``python -m aeqlab.cli``: the command line."""

from aeqlab.cli import main
from aeqlab.signals import run_then_hand_back

run_then_hand_back(main)  # a press during the interpreter's own shutdown: no traceback
