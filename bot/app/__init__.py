"""The use cases: a pass (fetch, build, check, publish), proposals, status, and one branch's
build, check and prerequisite search. Each wires the ports (`bot.core.ports`) to the core's
decisions; the adapters come from `bot.app.wiring`, so tests hand in fakes there."""
