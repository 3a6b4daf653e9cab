"""Event ingestion (native API and the Segment spec). Built by the Ingest issue."""
