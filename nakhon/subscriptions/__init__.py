"""NGSI-LD subscriptions with durable notifications (ETSI GS CIM 009 V1.8.1, 5.8 and 5.11).

* :mod:`.model` — parse/validate a Subscription into its normal form;
* :mod:`.matcher` — the subscription index and the write hook that fills the outbox inside the
  entity write transaction;
* :mod:`.store` — subscriptions and outbox tables on SQLite and PostgreSQL;
* :mod:`.dispatcher` / :mod:`.delivery` — per-subscription delivery over HTTP and MQTT;
* :mod:`.notify` / :mod:`.view` — notification bodies and the subscription representation;
* :mod:`.service` — the use cases, each with its authorisation check; :mod:`.api` — routes.

See docs/subscriptions.md.
"""
