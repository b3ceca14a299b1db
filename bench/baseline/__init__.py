"""The point-to-point baseline: the integrations Orderflow replaces.

Three independent integrations (ERP, billing, provisioning), as the Salesforce CPQ world
built them: each polls Salesforce for the activated Orders (with their lines) it has not
handled, sends them to its system, and writes its own status back onto each record with
simple-salesforce, one record a call. Provisioning waits for the ERP and billing statuses.
Used only by :mod:`bench.api_economy` to count what this costs in Salesforce API calls.
"""
