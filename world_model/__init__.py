"""ppuu world_model package."""
