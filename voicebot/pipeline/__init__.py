"""The spoken call: one pipecat pipeline per call over models shared by the process.

Entry points: :class:`voicebot.pipeline.resources.CallResources` (load once) and
:func:`voicebot.pipeline.pipeline.build_call_pipeline` (per call); see ``pipeline.py`` for the flow.
"""
