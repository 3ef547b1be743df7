"""Forge adapters behind `bot.ports.Forge`: local (a directory), GitLab, GitHub."""
