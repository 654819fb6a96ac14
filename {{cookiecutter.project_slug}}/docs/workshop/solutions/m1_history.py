"""Module 1, answered for the run that 01-history.md starts (`--workflow-id workshop-1`)."""

WORKFLOW_ID = "workshop-1"

# Events 1-4 are the same in every workflow (started, then the first workflow task scheduled,
# started, completed); event 5 is the first command the workflow code gave: start a batch.
FIFTH_EVENT_TYPE = "StartChildWorkflowExecutionInitiated"

# Stage 1 of the pipeline, the first thing every batch does.
FIRST_ACTIVITY_TYPE = "fetch_documents"
