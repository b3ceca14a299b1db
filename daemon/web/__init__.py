"""The HTTP listener: its gate, the callbacks, the metrics, the operations canvas."""
