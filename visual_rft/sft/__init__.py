"""The supervised baseline: the same data, the target rendered as the answer, loss on the answer tokens."""
