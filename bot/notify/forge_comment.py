"""A comment on the bot's own merge request for the XSA a notification is about.

The forge keeps one comment per key (`Forge.comment` edits it in place), so a repeat
changes nothing. A notification with no merge request of the bot's is not a comment's:
it counts as reached.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.core.notify import Message
from bot.core.ports import Forge
from bot.errors import XsabotError
from bot.notify import NotifyFailed
from bot.redact import redact


class ForgeCommentChannel:
    name = "forge_comment"

    def __init__(self, forge: Forge) -> None:
        self.forge = forge

    def send(self, message: Message) -> None:
        if message.mr_id is None:
            if message.kind == "test":  # no merge request to comment on: reach the forge
                self._call(self.forge.list_open)
            return
        text = f"**{message.subject}**\n\n```\n{message.body}```\n"
        mr_id = message.mr_id
        self._call(lambda: self.forge.comment(mr_id, f"xsabot-notify:{message.branch}", text))

    def _call(self, call: Callable[[], object]) -> None:
        try:
            call()
        except XsabotError as exc:
            raise NotifyFailed(f"forge comment: {redact(str(exc))}") from None
