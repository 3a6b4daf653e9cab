"""Templates, versions, layouts and the pure renderer. Built by the Templates issue."""
