"""The lazy API and the task-graph format (see ``spec`` for the format)."""
