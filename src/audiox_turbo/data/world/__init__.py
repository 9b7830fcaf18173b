"""data world."""
