"""OET, the Observation Execution Tool: runs telescope procedures on request."""

__version__ = "0.1.0"
