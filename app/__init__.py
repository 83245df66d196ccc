"""ppuu app package."""
