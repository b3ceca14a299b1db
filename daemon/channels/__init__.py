"""What the context holds open beside the database: the change event stream, the webhook."""
