"""Email through SMTP (stdlib `smtplib`): plain text a list archive renders well.

Subject `[xsabot] xsa/4.19: XSA-508 blocked` (stable while the state is); `Message-ID` made
from the notification's key under the domain of `from`, so a repeat has the same ID and an
archive or a reader drops it; `In-Reply-To` and `References` name a stable root per branch,
so each branch's messages thread together.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from bot.config import EmailNotify
from bot.core.notify import Message
from bot.forges.credentials import read_secret
from bot.notify import NotifyFailed
from bot.redact import redact


def _id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class EmailChannel:
    name = "email"

    def __init__(self, config: EmailNotify) -> None:
        self.config = config
        self.domain = config.sender.rpartition("@")[2]
        self.username = read_secret(
            "notify.email.username", config.username_env, config.username_file
        )
        self.password = read_secret(
            "notify.email.password", config.password_env, config.password_file
        )

    def thread_root(self, branch: str) -> str:
        """The Message-ID every message of `branch` replies to."""
        return f"<xsabot.thread.{_id(branch)}@{self.domain}>"

    def compose(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.config.sender
        mail["To"] = ", ".join(self.config.to)
        mail["Subject"] = redact(message.subject)
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = f"<xsabot.{_id(message.key)}@{self.domain}>"
        root = self.thread_root(message.branch)
        mail["In-Reply-To"] = root
        mail["References"] = root
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Xsabot-Key"] = message.key
        mail.set_content(redact(message.body), subtype="plain", charset="utf-8", cte="8bit")
        return mail

    def send(self, message: Message) -> None:
        host, _, port = self.config.smtp.rpartition(":")
        mail = self.compose(message)
        try:
            with smtplib.SMTP(host, int(port), timeout=self.config.timeout) as smtp:
                if self.config.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username and self.password:
                    smtp.login(self.username, self.password)
                smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifyFailed(f"email via {self.config.smtp}: {redact(str(exc))}") from None
