"""``python -m aeqlab.cli``: the command line."""

from aeqlab.cli import main
from aeqlab.signals import hand_back_at_exit

try:
    main()
finally:  # a press during the interpreter's own shutdown: no traceback (the loop is inline, not a helper of
    # aeqlab.signals shared with aeqlab/entry.py: a press can land on the entry of any function called here)
    while True:
        try:
            hand_back_at_exit()
            break
        except KeyboardInterrupt:  # a press before SIGINT was handed back: the command is over, go on
            continue
