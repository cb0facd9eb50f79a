"""The protocol model under its earlier module name: every section, re-exported from its own module.

New code imports from :mod:`aeqlab.protocol` (or the section's module); this module
stays so that imports written before the split keep working.
"""

from aeqlab.protocol import *  # noqa: F401,F403
from aeqlab.protocol import __all__  # noqa: F401
from aeqlab.protocol.instruments import _driver_names, _options_model  # noqa: F401
