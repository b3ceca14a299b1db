"""The cycle and its phases: :mod:`.run` runs them, in this order, each committing its work.

On the leader (the only instance that speaks to Salesforce):

1. :mod:`.poll`: new and changed Orders become plans (:mod:`.adoption` for those before the
   cut-over, :mod:`.crosswalk` remaps legacy ids, :mod:`.amend` applies changes in flight,
   :mod:`.held` plans again what could not be planned); :mod:`.org_state` keeps the API budget.
2. :mod:`.events`: the change events queued on the stream, read as the poll reads.
3. :mod:`.amend` and :mod:`.held`: running steps a change made unnecessary are cancelled, held
   orders the crosswalk or new rules now allow are planned.
4. :mod:`.invoices`: posted Invoices become ERP transfer plans.
5. :mod:`.systems`: downstream systems offline or back.

On every instance:

6. :mod:`.advance`: the plans due move on (auto steps, :mod:`.fallout`, :mod:`.jeopardy`).
7. Dispatch: :mod:`.claims` leases the due callouts, :mod:`.dispatch` sends them (intent
   before, result after); under ``orderflow run`` :mod:`.pipeline` sends them continuously,
   beside the cycle. :mod:`.shadow` stands in for the systems in shadow mode.

On the leader again:

8. :mod:`.status_poll`: accepted tasks asked where they stand (:mod:`.completion` finishes them).
9. :mod:`.advance` again (every instance), then :mod:`.writeback`: what Salesforce should show
   (:mod:`.writeback_values`), sent as differences (:mod:`.writeback_bulk` for many records),
   each record's answer kept (:mod:`.writeback_results`).

Between cycles, :func:`.run.sweep` assesses jeopardy, writes back and notifies
(:mod:`.notifications`). A phase imports the store, the cluster, the channels, the context and
other phases, never :mod:`.run`: the cycle calls the phases, not the other way round.
"""
