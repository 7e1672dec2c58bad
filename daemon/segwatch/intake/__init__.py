"""Files on disk → complete, settled, safely readable arrays: layout, scans and observers, readiness, reads."""
