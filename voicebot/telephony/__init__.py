"""The phone door of the hotline: SIP calls into the voice pipeline, and their hand-off to staff.

Application code on top of the ``sip_bridge`` library (SIP user agent, RTP media, pipecat transport): what a phone
call does between the user agent's events, the RTP endpoint and the call pipeline (:mod:`.sip_calls`), and the
transfer to staff (:mod:`.transfer`).
"""
