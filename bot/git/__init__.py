"""Everything that touches git: running it, reading and writing objects, building branches."""
