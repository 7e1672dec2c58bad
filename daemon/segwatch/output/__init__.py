"""Where summaries and state go: event files, the sink, run directories, the ledger, recovery, locks."""
