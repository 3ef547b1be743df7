"""Pure decisions: no I/O, no git, forge, notify or web imports (a meta-test keeps it so)."""
