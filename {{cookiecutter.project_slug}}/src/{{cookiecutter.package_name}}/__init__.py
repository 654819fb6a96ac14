"""A Temporal service generated from the Python Temporal service template.

The modules are named for what they hold: `settings` (configuration), `worker` (the
process that runs workflows and activities), `workflows`, `activities/` and `store`
(where intermediate results live). docs/patterns.md says which files to copy into another
project for each reusable pattern, and tests/test_patterns.py proves each list.
"""

SERVICE_NAME = "{{ cookiecutter.project_slug }}"
"""Default task queue, metric prefix and identity hint of this service."""
