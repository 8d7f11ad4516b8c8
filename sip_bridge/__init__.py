"""SIP/RTP bridge: sans-I/O protocol cores (SIP, SDP, RTP, RFC 4733) and thin asyncio transports."""
