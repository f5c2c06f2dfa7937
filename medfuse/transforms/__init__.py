"""medfuse.transforms (see docs/)."""
