"""``python -m reliability.bad_inputs [--kind KIND]``: run the corpus, print the table."""

from reliability.bad_inputs.corpus import main

raise SystemExit(main())
