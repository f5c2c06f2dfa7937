"""medfuse.engines (see docs/)."""
