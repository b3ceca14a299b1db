"""Several instances on one database: who is alive, who leads, who is woken."""
