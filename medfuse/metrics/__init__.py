"""medfuse.metrics (see docs/)."""
