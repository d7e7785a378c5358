"""httptask: a catalog of real API endpoints as ready-to-run HTTP tasks for workflow engines."""

__version__ = "0.1.0"
