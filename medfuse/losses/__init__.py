"""medfuse.losses (see docs/)."""
