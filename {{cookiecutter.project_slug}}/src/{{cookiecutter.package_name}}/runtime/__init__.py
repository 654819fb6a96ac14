"""The service runtime: everything a worker needs, nothing of any sample.

Nothing here imports `app.py` or a sample package (a test checks it): each module can be
copied into another project with the few files docs/patterns.md lists for it.
"""
