"""Pictures: grids, plots, animations."""
