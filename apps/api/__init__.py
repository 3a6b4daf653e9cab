"""The DRF interface: authentication, base views, /api/v1. Built by the Ingest issue."""
