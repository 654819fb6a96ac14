"""Module 1: your answers, read from the history of a pipeline run (see 01-history.md).

Fill in the three values, then run `make workshop-check M=1` while `make dev` runs.
"""

# The workflow id of a pipeline run that completed, e.g. "workshop-1".
WORKFLOW_ID = ""

# The type of the event with id 5 in that workflow's history, as the UI shows it.
FIFTH_EVENT_TYPE = ""

# The activity type (its name) of the first activity that the pipeline's first batch (the
# child workflow named `<workflow id>-batch-000000`) scheduled.
FIRST_ACTIVITY_TYPE = ""
