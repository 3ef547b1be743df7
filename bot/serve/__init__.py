"""`xsabot serve`: the bot as a service. A scheduler runs the application layer's pass
(`bot.app.reconcile`) on an interval and when a forge's webhook asks; a small web app shows
the status page, the same status as JSON, metrics and health. Nothing here decides what a
branch holds: it only triggers passes and reads their reports."""
