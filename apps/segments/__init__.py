"""Segments: audiences defined with the journeys' condition language, kept as membership rows."""
