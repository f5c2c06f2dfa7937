"""medfuse.nets (see docs/)."""
