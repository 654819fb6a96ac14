"""A Temporal service generated from the Python Temporal service template.

Two layers: `runtime/` is the service machinery (settings, client, worker, graceful
shutdown, health, metrics, logs, watchdog, process pool, state store, checkpoint, memo)
and knows no workflow; the sample on top (`{{ cookiecutter.sample }}/`) is the part you replace. `app.py`
is where they meet: it names the settings class, the workflows and activities a worker
registers, and what `run` starts. docs/make-it-yours.md walks through replacing the sample.
"""

SERVICE_NAME = "{{ cookiecutter.project_slug }}"
"""Default task queue, metric prefix and identity hint of this service."""
