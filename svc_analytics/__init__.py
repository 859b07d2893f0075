"""svc_analytics: the streaming reports (top items, revenue per category, the
funnel, zero-result searches) for admins, read from the Cassandra tables the
Spark job in pipelines/analytics.py keeps up to date."""
