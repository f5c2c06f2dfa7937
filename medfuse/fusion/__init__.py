"""medfuse.fusion (see docs/)."""
