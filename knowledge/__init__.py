"""Knowledge base: ingestion, hybrid retrieval and grounded answers."""
