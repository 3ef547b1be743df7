"""One module per subcommand: `add_arguments(parser)` and `run(args, ctx) -> exit status`."""
