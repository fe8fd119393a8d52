"""
Inbox adapters: each vendor's listing and reading of one account's inbox in the engine's terms
(:class:`~airflow_provider_linkmsg.engine.Conversation` listed, messages of a
:class:`~airflow_provider_linkmsg.engine.ReadWindow` read), on top of the vendor's hook.
"""
