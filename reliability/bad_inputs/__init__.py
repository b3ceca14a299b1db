"""The bad-input corpus: malformed and hostile inputs, each with the answer it must get.

``cases.yaml`` lists the cases (name, kind, input file under ``inputs/``, expected answer);
``python -m reliability.bad_inputs`` runs them all and prints case → expected → got → ok.
See :mod:`reliability.bad_inputs.corpus`.
"""
