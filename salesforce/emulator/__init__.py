"""A local Salesforce org emulator that simple-salesforce talks to over real HTTPS.

    emu = Emulator(workdir)
    emu.start()
    session = requests.Session()  # pin emu.ca_file (see tests/integration/emulator_helpers.py)
    sf = Salesforce(instance_url=emu.url, session_id=emu.issue_session(), session=session)

Modules: ``server`` (HTTPS), ``gateway`` (auth, counting, faults), ``api`` / ``composite``
/ ``sobject_collections`` (REST resources), ``soql`` + ``soql_eval`` + ``query`` (SOQL),
``org`` (record rules), ``constraints`` (what a write must obey: picklists, lengths,
lookups, ...), ``access`` (the API user's permission sets), ``metadata`` (salesforce/metadata
loaded as the org's own), ``store`` (SQLite), ``schema``, ``ids``, ``seed``; Change Data
Capture: ``events`` (change event schemas, the event bus, replay) and ``pubsub`` (the Pub/Sub
API over gRPC: ``emu.pubsub_endpoint``).
"""

from salesforce.emulator.emulator import Emulator
from salesforce.emulator.faults import Fault

__all__ = ["Emulator", "Fault"]
