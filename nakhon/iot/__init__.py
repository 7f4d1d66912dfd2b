"""IoT ingest: device registry, JSON / UltraLight 2.0 payloads, MQTT and HTTP ingest.

Devices speak as they speak to FIWARE IoT Agents (iotagent-json, iotagent-ul), so a city moves
existing devices to Nakhon without touching them. See ``docs/iot.md``.
"""
