"""import and export commands."""
