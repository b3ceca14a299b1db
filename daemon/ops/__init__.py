"""Operations run on demand: resync, reconcile, go-live, the demo."""
