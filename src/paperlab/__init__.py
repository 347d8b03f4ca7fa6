"""paperlab."""
