"""Reports of a run from its journal: figures, summary page, tables of runs, exports."""

from aeqlab.report.core import export_csv, list_runs, make_report, run_row  # noqa: F401
