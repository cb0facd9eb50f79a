"""Reports of a run from its journal: figures, summary page, tables of runs, exports, the live page.

The figure functions in :mod:`aeqlab.report.figures` return matplotlib Figures for notebooks.
"""

from aeqlab.report.core import ReportResult, make_report  # noqa: F401
from aeqlab.report.data import journal_data, read_run  # noqa: F401
from aeqlab.report.export import export_csv  # noqa: F401
from aeqlab.report.listing import list_runs, run_row  # noqa: F401
