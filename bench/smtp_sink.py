"""The bench's SMTP sink: aiosmtpd's Sink, offering PIPELINING as Postfix and the mail providers do.

aiosmtpd reads pipelined commands one at a time, as RFC 2920 asks of a
server, but does not announce it. Imported by the sink's own process only.
"""

from aiosmtpd.handlers import Sink


class PipeliningSink(Sink):
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        responses.insert(-1, "250-PIPELINING")
        return responses
