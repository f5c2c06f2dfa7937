"""medfuse.io (see docs/)."""
