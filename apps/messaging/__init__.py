"""Messages, attempts, status events and the delivery pipeline. Built by the Delivery core issue."""
