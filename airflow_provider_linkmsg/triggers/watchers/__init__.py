"""
Inbox activity watchers: ``BaseEventTrigger`` s for ``AssetWatcher`` (Airflow 3), one per inbox vendor.

* :class:`~.connectsafely.ConnectSafelyInboxActivityTrigger`
* :class:`~.linkedapi.LinkedApiInboxActivityTrigger`
* :class:`~.linkup.LinkupInboxActivityTrigger`
"""
