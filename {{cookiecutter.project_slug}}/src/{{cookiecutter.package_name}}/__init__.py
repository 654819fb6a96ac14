"""A Temporal service generated from the Python Temporal service template.

The modules are named for what they hold: `settings` (configuration), `worker` (the
process that runs workflows and activities), `workflows`, `activities/` and `store`
(where intermediate results live). Each one can be copied into another project on its own.
"""

SERVICE_NAME = "{{ cookiecutter.project_slug }}"
"""Default task queue, metric prefix and identity hint of this service."""
