"""The NGSI-LD Temporal API: history of attribute instances, queries, aggregation, provision."""
