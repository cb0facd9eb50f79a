"""Runs: the run engine, its subscribers (journal, live view), run folders and the run object."""
