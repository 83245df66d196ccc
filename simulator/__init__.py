"""ppuu simulator package."""
