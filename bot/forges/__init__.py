"""Forge adapters behind `bot.core.ports.Forge`: local (a directory), GitLab, GitHub."""
