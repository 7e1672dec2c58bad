"""Running segwatch: one artifact through the processor, the daemon loop, health, notify, signals."""
