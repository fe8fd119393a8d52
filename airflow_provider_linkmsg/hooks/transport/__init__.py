"""
The shared transport's parts, one concern per module, none of them an Airflow hook.

* :mod:`.params`: connection settings (:class:`~.params.ConnParams`) read from a connection's fields.
* :mod:`.ratelimit`: the client-side rate limiter (token bucket, in-flight cap, vendor-requested pauses).
* :mod:`.retry`: what is retried, how long to wait (``Retry-After``, reset times, back-off), the give-up text.
* :mod:`.interpret`: a response (or a failure to get one) turned into data or a typed error.
"""
