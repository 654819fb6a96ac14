"""The minimal sample: the smallest service that shows every idea of the runtime.

`StatsWorkflow` downloads pages (async I/O, bounded concurrency, bodies to the state store)
and computes word statistics for each on every core (the process pool, with a checkpoint
and memoization). Replace it with your own workflows: docs/make-it-yours.md.

    settings.py    this sample's settings section (on top of the runtime's)
    models.py      what travels between the starter, the workflow and the activities
    textstats.py   the CPU-bound function (pure Python: it holds the GIL)
    activities.py  download_pages (I/O) and compute_stats (CPU, checkpointed, memoized)
    workflows.py   StatsWorkflow: download, then compute
    starter.py     `python -m <package> run URL...`
"""
