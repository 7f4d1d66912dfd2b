"""The seven smart-city domains: catalogue, Thai AQI, alert rules (docs/domains.md).

Modules: :mod:`catalogue` (domains ↔ entity types, city extensions), :mod:`aqi` (PCD Thai AQI),
:mod:`averaging` (1/8/24-hour means), :mod:`alerts` (rules, pure evaluation),
:mod:`alert_service` (rules per city, ``evaluate_alerts``, Alert entities), :mod:`monitor`
(periodic absence sweep), :mod:`api` (HTTP routes).
"""
