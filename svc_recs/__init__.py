"""svc_recs: recommendations served from Cassandra. The lists are trained by
the Spark ALS job in pipelines/recs.py from the event lake and published
under a model version; this service reads the version the pointer names,
hydrates the hits from the catalog and filters what cannot be bought."""
