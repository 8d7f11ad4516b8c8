"""CLI command groups; each module registers its commands on the main app."""
