"""The bench's SMTP sink: aiosmtpd's Sink, offering PIPELINING as Postfix and the mail providers do.

aiosmtpd reads pipelined commands one at a time, as RFC 2920 asks of a
server, but does not announce it. The tests' SMTP servers offer it the same way.
"""

from aiosmtpd.handlers import Sink


class OffersPipelining:
    """An aiosmtpd handler whose EHLO answer announces PIPELINING while `pipelining` is true."""

    pipelining = True

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses


class PipeliningSink(OffersPipelining, Sink):
    pass
