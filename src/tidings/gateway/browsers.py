"""The gateway's Web Push side: browsers connected here, their subscriptions and messages.

A browser (Firefox's push client) says hello, subscribes with ``register`` (a ``channelID``,
perhaps an application server key) and gets a push endpoint; messages posted there come over
the bus (:class:`WebPushed`) and go to the browser's connection as ``notification`` frames. A
message stays in the store until the browser acks it; what it did not ack comes again when it
connects next (after its hello). What waits goes out in pages of :data:`PAGE`, the next when the
browser has acked the last (however much waits, and never more at once than its socket takes).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tidings.bus.events import WebPushed
from tidings.core.webpush_service import WebPushService
from tidings.errors import TidingsError
from tidings.protocol import codes
from tidings.protocol.session import ChannelRegister, ChannelUnregister

if TYPE_CHECKING:
    from tidings.gateway.hub import Link

log = logging.getLogger("tidings.gateway")

BrowserEvent = ChannelRegister | ChannelUnregister  # acks: Hub.handle
PAGE = 100  # waiting messages sent at a time: 100 bodies of 4 KiB stay under the send buffer


class Browsers:
    def __init__(self, webpush: WebPushService) -> None:
        self.webpush = webpush
        self.links: dict[str, Link] = {}  # uaid -> the connection of a browser with channels
        # uaid -> versions of a full page of waiting messages not acked yet (more may wait)
        self.pages: dict[str, set[str]] = {}
        # uaid -> versions sent live while what waited goes out in pages: a later page read
        # finds those not acked yet, and must not send them again
        self.live: dict[str, set[str]] = {}

    async def on_hello(self, link: Link, uaid: str) -> None:
        """A known identity said hello: if it has channels, send what waits for it."""
        if not await self.webpush.has_channels(uaid):
            return
        self._take_over(link, uaid)
        self.live[uaid] = set()
        await self._send_page(link, uaid)

    def _take_over(self, link: Link, uaid: str) -> None:
        """Pushes for the browser go to this connection. An older one of the same uaid is
        closed (it would hear nothing more, even after the newer one goes): its browser
        reconnects and takes over in turn, getting what waits."""
        old = self.links.get(uaid)
        self.links[uaid] = link
        if old is not None and old is not link and not old.closed:
            old.close(codes.CLOSE_NORMAL, "another connection of this uaid took over")

    async def _send_page(self, link: Link, uaid: str) -> None:
        self.pages.pop(uaid, None)  # (before the read: one page at a time)
        page = await self.webpush.pending(uaid, PAGE)
        if self.links.get(uaid) is not link:
            return
        live = self.live.get(uaid, set())
        if len(page) == PAGE:  # more may wait
            self.pages[uaid] = {message.version for message in page if message.version not in live}
        else:  # all of it is out: what comes now goes out live only
            self.live.pop(uaid, None)
        for message in page:
            if message.version not in live:
                link.session.notify_channel(message)

    async def on_ack(self, link: Link, uaid: str, versions: list[str]) -> None:
        """Forget what the browser acked; once it has acked a full page, send the next."""
        await self.webpush.ack(uaid, versions)
        page = self.pages.get(uaid)
        if page is None or self.links.get(uaid) is not link:
            return
        page.difference_update(versions)
        if not page:
            await self._send_page(link, uaid)
            link.flush()

    async def on_event(self, link: Link, event: BrowserEvent) -> None:
        session = link.session
        uaid = session.uaid
        assert uaid is not None  # events come after the hello is answered
        if isinstance(event, ChannelRegister):
            endpoint = await self.webpush.subscribe(uaid, event.channel_id, event.key)
            if endpoint is None:
                session.channel_refused(
                    event.channel_id, 409, "channel taken with another key, or too many channels"
                )
                return
            self._take_over(link, uaid)
            session.channel_registered(event.channel_id, endpoint)
        else:
            await self.webpush.unsubscribe(uaid, event.channel_id)
            session.channel_unregistered(event.channel_id)

    async def rescan(self) -> None:
        """Pushes may have been lost on the bus: send each browser here what waits for it
        (what is in flight unacked goes again; browsers drop a version they have seen)."""
        for uaid, link in list(self.links.items()):
            if not link.closed:
                self.live[uaid] = set()  # as after a hello: pages, the next on acks
                try:
                    await self._send_page(link, uaid)
                except TidingsError as exc:  # the others still get theirs
                    log.warning("rescan: cannot read what waits for a browser: %s", exc)
                    continue
                link.flush()

    def on_pushed(self, event: WebPushed) -> None:
        link = self.links.get(event.uaid)
        if link is not None and not link.closed:
            if (live := self.live.get(event.uaid)) is not None:
                live.add(event.message.version)
            link.session.notify_channel(event.message)
            link.flush()

    def detach(self, link: Link) -> None:
        uaid = link.session.uaid
        if uaid is not None and self.links.get(uaid) is link:
            del self.links[uaid]
            self.pages.pop(uaid, None)
            self.live.pop(uaid, None)
