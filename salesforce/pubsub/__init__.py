"""Salesforce's Pub/Sub API (gRPC, package ``eventbus.v1``).

``pubsub_api_pb2*`` are generated from ``pubsub_api.proto`` (Salesforce's published interface,
CC0) by ``make protos``; do not edit them. ``changed_fields`` reads and writes the bitmaps a
change event's header carries.
"""
