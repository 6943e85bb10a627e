"""Getting events to the sinks: which events each sink wants (``routing``) and delivering the
outbox with retries, backoff and dead letters (``outbox``). Notifiers themselves (the message
formats) are :mod:`vulnwatch.notify`."""
