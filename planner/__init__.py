"""ppuu planner package."""
