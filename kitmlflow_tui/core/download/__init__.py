"""Step 4: the bytes of the planned files. ``downloader`` fetches a plan into a folder; ``transfer`` is the
engine under every byte moved (ranges, retries, size checks), ``transports`` reads each store, ``stores`` maps
an artifact URI to its store and client library, ``range_journal`` records what a partial file holds."""
