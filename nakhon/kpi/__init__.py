"""KPI engine: city indicators per tenant, domain and period, stored as NGSI-LD
``KeyPerformanceIndicator`` entities and recomputed incrementally from daily rollups.

See docs/kpi.md. Entry points: :func:`nakhon.kpi.service.recompute_kpis`, the API routes in
:mod:`nakhon.kpi.api` and the periodic task :class:`nakhon.kpi.task.KpiMonitor`.
"""
