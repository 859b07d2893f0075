"""svc_recs consumes no Kafka topic itself: the lake (pipelines/analytics.py)
lands the events and the training job (pipelines/recs.py) reads them there."""
