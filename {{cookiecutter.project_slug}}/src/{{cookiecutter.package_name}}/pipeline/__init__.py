"""The sample: a crawl pipeline that fetches documents (async I/O), fingerprints them on
every core (MinHash on the process pool, with checkpoints and memoization) and groups
near-duplicates. docs/pipeline.md explains it; `app.py` registers it.
"""
