"""svc_analytics consumes no Kafka topic itself: the Spark job
(pipelines/analytics.py) reads the events and writes the report tables."""
