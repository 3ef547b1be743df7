"""The check gate's adapters: running the operator's check command on a built tree, and finding
the prerequisites a fix needs to build (not only to apply). The decisions are `bot.core.gate`
and `bot.core.compiler`."""
