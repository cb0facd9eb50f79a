"""``python -m aeqlab.cli``: the command line."""

from aeqlab.cli import main
from aeqlab.signals import hand_back_at_exit

try:
    main()
finally:  # a press during the interpreter's own shutdown: no traceback
    hand_back_at_exit()
