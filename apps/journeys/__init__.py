"""Journeys, runs, the scheduler, segments and broadcasts. Built by the Journeys issues."""
