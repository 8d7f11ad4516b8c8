"""Data protection built in (issue 11): PII redaction before a call record is written, retention, the caller's
right of access and erasure, and the audit log of who saw or changed what."""
