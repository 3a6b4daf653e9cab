"""Channels, providers and the one outbound HTTP client. Built by the Delivery core issue."""
